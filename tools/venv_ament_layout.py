"""Lay out the venv prefix the way ``colcon build --symlink-install`` lays out an install prefix.

    python tools/venv_ament_layout.py PREFIX REPO

Editable pip installs put no ``data_files`` into the prefix and put console scripts in
``PREFIX/bin``. ROS tools expect more (the same as on any ROS install):

* ``share/ament_index/resource_index/packages/<pkg>`` markers and ``share/<pkg>/package.xml``
  (``get_package_share_directory``);
* ``share/dinno_ros/launch/*.launch.py`` and ``share/dinno_ros/config/*.yaml`` inside REAL
  directories: ``ros2 launch PKG FILE`` searches the share directory with ``os.walk``, which
  does not enter a symlinked directory. Each file is a link to the repository's file, so edits
  show at once; stale links (a file deleted from the repository) are removed;
* ``lib/dinno_ros/<executable>`` for every console script of dinno_ros (from its installed
  entry points, the one list of them): what ``launch_ros``' ``Node(package=, executable=)`` and
  ``ros2 pkg executables``/``ros2 run`` look for.

Idempotent; prints one line per package.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import distribution
from pathlib import Path

PACKAGES = ("dinno_core", "dinno_ros")
DATA = {"dinno_ros": {"launch": "*.launch.py", "config": "*.yaml"}}


def link(target: Path, name: Path) -> None:
    if name.is_symlink() or name.is_file():
        if name.is_symlink() and os.readlink(name) == str(target):
            return
        name.unlink()
    elif name.is_dir():
        raise SystemExit(f"error: {name} is a directory; expected a file or a link (remove it and rerun make)")
    name.symlink_to(target)


def real_directory(path: Path) -> None:
    """``path`` as a real directory (an old whole-directory link is replaced)."""
    if path.is_symlink():
        path.unlink()
    path.mkdir(parents=True, exist_ok=True)


def lay_out(prefix: Path, repo: Path) -> None:
    share = prefix / "share"
    index = share / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        source = repo / "src" / package
        real_directory(share / package)
        link(source / "resource" / package, index / package)
        link(source / "package.xml", share / package / "package.xml")
        for folder, pattern in DATA.get(package, {}).items():
            target_dir = share / package / folder
            real_directory(target_dir)
            wanted = {p.name: p for p in sorted((repo / folder).glob(pattern)) if p.is_file()}
            for stale in target_dir.iterdir():
                if stale.name not in wanted and (stale.is_symlink() or stale.is_file()):
                    stale.unlink()
            for name, path in wanted.items():
                link(path.resolve(), target_dir / name)
        scripts = sorted(e.name for e in distribution(package).entry_points if e.group == "console_scripts")
        if scripts:
            lib = prefix / "lib" / package
            real_directory(lib)
            for script in scripts:
                executable = prefix / "bin" / script
                if not executable.is_file():
                    raise SystemExit(f"error: {executable} is missing: reinstall {package} (make core)")
                link(executable, lib / script)
        print(f"{package}: share/{package}" + (f", lib/{package}: {', '.join(scripts)}" if scripts else ""))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.split("\n\n")[1])
    lay_out(Path(sys.argv[1]).absolute(), Path(sys.argv[2]).resolve())
