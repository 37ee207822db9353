"""dinno_core: ROS-agnostic DiNNO / DSGD / DSGT library; ament_python package, also pip-installable.

All package metadata lives here (the ros2/examples layout, like dinno_ros): ``colcon build
--symlink-install`` runs this file from a build folder holding links to setup.py, package.xml
and the ``dinno_core`` package only (no pyproject.toml), so nothing may come from
pyproject.toml but the build backend, and the packages are listed explicitly (automatic
discovery would also find the build folder's ``resource`` and ``prefix_override``).

    pip:    pip install -e src/dinno_core          (what `make core` does)
    colcon: colcon build [--symlink-install] --packages-select dinno_core
"""

from setuptools import find_packages, setup

PACKAGE = "dinno_core"

setup(
    name=PACKAGE,
    version="0.1.0",  # keep in sync with package.xml and dinno_core/__init__.py
    description="Distributed neural-network optimisation (DiNNO, DSGD, DSGT) for robot teams, without ROS",
    long_description="ROS-agnostic core of DiNNO for ROS 2. See the repository README.",
    long_description_content_type="text/plain",
    # License: Apache-2.0 (package.xml). No python_requires (Python >= 3.10 in practice):
    # colcon-python-setup-py 0.2.9 reads the setuptools options back with ast.literal_eval and
    # chokes on the SpecifierSet it becomes.
    license="Apache-2.0",
    maintainer="DiNNO ROS 2 maintainers",
    maintainer_email="dinno@example.com",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={
        PACKAGE: [
            "tasks/mapping/plans/*.yaml",
            "tasks/mapping/plans/*.pgm",
            "tasks/mapping/plans/*.png",
            "configs/*.yaml",
        ],
    },
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    # Unpinned on purpose: exact versions live in the repository's requirements.txt /
    # constraints.txt (pip route) and package.xml's rosdep keys (colcon route).
    install_requires=["torch", "numpy", "networkx", "scipy", "matplotlib", "pydantic>=2", "pyyaml", "rich",
                      "pillow"],
    # rl: the predator-prey reinforcement-learning task (dinno_core.tasks.predator_prey)
    extras_require={"test": ["pytest", "pytest-timeout"], "rl": ["vmas"]},
    entry_points={"console_scripts": ["dinno-experiment = dinno_core.experiment:main"]},
    zip_safe=False,
)
