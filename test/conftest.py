"""Session-wide test environment for the DiNNO ROS 2 workspace.

Set once, in ``pytest_configure`` (before any test module is imported, so before any
``rclpy.init()``), for this process and every child it starts:

* ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``: no discovery traffic leaves the host.
* ``ROS_DOMAIN_ID``: one per test run, 1..100, reserved with a lock file so that concurrent
  runs on this machine (other developers, CI jobs) never share a domain. Fast DDS derives
  UDP ports from it (7400 + 250 * id + ...); ids above 101 reach the Linux ephemeral port
  range (32768+) and ids above 232 overflow 65535, hence the cap at 100.
  ``DINNO_TEST_ROS_DOMAIN_ID=<n>`` forces a value.
* ``ROS_LOG_DIR``: a temporary directory (deleted after a passing run, kept and printed
  otherwise).
* ``DINNO_TEAM_KEY_FILE``: a fresh team key (mode 600) in that directory, which every robot
  node of the run signs its weights with.
* ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``: 1 unless already set; tests start several
  processes on a 2-core machine and oversubscription makes them slow and flaky.

Fixtures: ``ros_env`` (environment for child processes), ``ros_context`` (a fresh rclpy
context per test), ``restore_torch_threads`` (for tests whose code sets torch's thread count).
Marker: ``slow``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import shutil
import sys
import tempfile
import zlib

import pytest

DOMAIN_ID_MIN, DOMAIN_ID_MAX = 1, 100
_LOCK_DIR = os.path.join(tempfile.gettempdir(), "dinno-ros-test-domains")

_saved_env: dict[str, str | None] = {}
_domain_lock_fd: int | None = None
_log_dir: str | None = None


def _set_env(name: str, value: str | None) -> None:
    _saved_env.setdefault(name, os.environ.get(name))
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _reserve_domain_id() -> int:
    """A domain id not used by another running test session on this machine.

    Starts at a pid-derived id and takes the first one whose lock file can be flock'ed; the
    lock is held (fd kept open) until the session ends, and vanishes if the process dies.
    """
    global _domain_lock_fd
    forced = os.environ.get("DINNO_TEST_ROS_DOMAIN_ID")
    if forced:
        value = int(forced)
        if not 0 <= value <= 232:
            raise pytest.UsageError(f"DINNO_TEST_ROS_DOMAIN_ID={forced} is outside 0..232")
        return value
    os.makedirs(_LOCK_DIR, exist_ok=True)
    span = DOMAIN_ID_MAX - DOMAIN_ID_MIN + 1
    start = zlib.crc32(f"{os.getpid()}:{os.getppid()}".encode()) % span
    for k in range(span):
        domain = DOMAIN_ID_MIN + (start + k) % span
        fd = os.open(os.path.join(_LOCK_DIR, f"{domain}.lock"), os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                continue
            raise
        _domain_lock_fd = fd
        return domain
    raise pytest.UsageError(
        f"all ROS domain ids {DOMAIN_ID_MIN}..{DOMAIN_ID_MAX} are held by other test runs "
        f"(locks in {_LOCK_DIR}); set DINNO_TEST_ROS_DOMAIN_ID"
    )


def pytest_configure(config: pytest.Config) -> None:
    global _log_dir
    config.addinivalue_line(
        "markers", "slow: long-running test (multi-process ROS runs, builds); deselect with -m 'not slow'"
    )
    if hasattr(config, "workerinput"):  # pytest-xdist worker: the controller set everything
        return

    domain = _reserve_domain_id()
    _log_dir = tempfile.mkdtemp(prefix=f"dinno-ros-log-{os.getpid()}-")

    _set_env("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    _set_env("ROS_DOMAIN_ID", str(domain))
    _set_env("ROS_STATIC_PEERS", None)
    _set_env("ROS_LOG_DIR", _log_dir)
    # Robots sign their weights (dinno_ros.message_auth): one team key for every node of the run.
    key_path = os.path.join(_log_dir, "team.key")
    with os.fdopen(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as key_file:
        key_file.write(secrets.token_hex(32) + "\n")
    _set_env("DINNO_TEAM_KEY_FILE", key_path)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        _set_env(name, os.environ.get(name) or "1")
    if "torch" in sys.modules:  # imported already (a plugin?): OMP_NUM_THREADS came too late
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"ros: ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID')} "
        f"ROS_AUTOMATIC_DISCOVERY_RANGE={os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE')} "
        f"ROS_LOG_DIR={os.environ.get('ROS_LOG_DIR')}"
    ]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _domain_lock_fd
    if _log_dir and os.path.isdir(_log_dir):
        if exitstatus == 0:
            shutil.rmtree(_log_dir, ignore_errors=True)
        else:
            reporter = session.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"ROS logs of this run kept in {_log_dir}")
    if _domain_lock_fd is not None:
        os.close(_domain_lock_fd)  # releases the flock
        _domain_lock_fd = None


def pytest_unconfigure(config: pytest.Config) -> None:
    for name, value in _saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _saved_env.clear()


@pytest.fixture
def ros_env() -> dict[str, str]:
    """Environment for ROS child processes (``subprocess.Popen(..., env=ros_env)``).

    A plain copy of ``os.environ``, passed through unchanged: it carries the session's
    ROS_DOMAIN_ID / discovery range / log dir, and the ros-* wheels' LD_LIBRARY_PATH together
    with ``_ROS_WHEELS_BOOTSTRAP_COMPLETE``. Dropping one without the other makes children
    fail with ``librcl_action.so: cannot open shared object file``. Add keys, don't remove.
    """
    return dict(os.environ)


@pytest.fixture
def ros_context():
    """A fresh rclpy context for one test, shut down afterwards (init/shutdown cycles are safe)."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


@pytest.fixture
def restore_torch_threads():
    """Put torch's intra-op thread count back after a test that runs code which sets it."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
