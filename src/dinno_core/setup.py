"""Shim for colcon's ament_python build (which runs setup.py).

All package metadata (name, version, dependencies, entry points, package data) lives in
pyproject.toml; setuptools reads it from there. This file only adds the two files that make
``dinno_core`` a ROS package in an install prefix: the ament index marker and package.xml.
"""

from setuptools import setup

PACKAGE = "dinno_core"

setup(
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
)
