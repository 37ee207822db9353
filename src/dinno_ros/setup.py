"""dinno_ros: ament_python package (ros2/examples layout), also pip-installable.

The launch files and parameter files live at the repository root (``launch/``, ``config/``);
``src/dinno_ros/launch`` and ``src/dinno_ros/config`` are relative symlinks to them, so both
``pip install src/dinno_ros`` and ``colcon build`` (which run this file from this directory)
install them to ``<prefix>/share/dinno_ros/{launch,config}``.
"""

from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = "dinno_ros"
HERE = os.path.dirname(os.path.abspath(__file__))


def _files(pattern: str) -> list[str]:
    # Relative paths (setuptools requires them); sorted for reproducible builds. A dangling
    # symlink (e.g. launch/ not created yet) simply yields no files.
    return sorted(
        os.path.relpath(p, HERE)
        for p in glob(os.path.join(HERE, pattern))
        if os.path.isfile(p)
    )


setup(
    name=PACKAGE,
    version="0.1.0",  # keep in sync with package.xml
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={PACKAGE: ["fastdds/*.xml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", _files("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", _files("config/*.yaml")),
    ],
    # ROS convention: runtime dependencies are declared in package.xml (rclpy, dinno_msgs,
    # dinno_core, ...). The pip route installs them from the repository's requirements.txt
    # and src/ (see the Makefile), never from an index by these names.
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="DiNNO ROS 2 maintainers",
    maintainer_email="dinno@example.com",
    description="rclpy nodes for DiNNO on ROS 2 (robot node, lidar simulator, team, demo)",
    license="Apache-2.0",
    python_requires=">=3.10",
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "robot_node = dinno_ros.robot_node:main",
            "lidar_sim = dinno_ros.lidar_sim_node:main",
            "path_follower = dinno_ros.path_follower_node:main",
            "dinno-team = dinno_ros.team:main",
            "dinno-demo = dinno_ros.demo:main",
        ],
    },
)
