"""The Fast DDS profile the robot node uses by default (fast reliable repair; see the XML file).

:func:`use_default_profile` must run before ``rclpy.init()``: Fast DDS reads the profiles file
named by the environment when the process creates its first participant.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

PROFILE_ENV_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
DISABLE_ENV = "DINNO_FASTDDS_PROFILE"


def profile_path() -> Path:
    """The shipped profiles file."""
    return Path(str(resources.files("dinno_ros") / "fastdds" / "dinno_profiles.xml"))


def use_default_profile(environ: dict[str, str] | None = None) -> str | None:
    """Point Fast DDS at the shipped profiles unless the user chose a file, disabled it
    (``DINNO_FASTDDS_PROFILE=off``) or runs another RMW. Returns the file used, or None."""
    env = os.environ if environ is None else environ
    if env.get(DISABLE_ENV, "").lower() in ("off", "0", "false", "no"):
        return None
    if not env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp").startswith("rmw_fastrtps"):
        return None
    if any(env.get(name) for name in PROFILE_ENV_VARS):
        return None
    path = str(profile_path())
    for name in PROFILE_ENV_VARS:
        env[name] = path
    return path
