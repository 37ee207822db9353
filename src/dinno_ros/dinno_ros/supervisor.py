"""Starting, watching and stopping a team's processes (``dinno-team``'s process supervisor).

Children run in their own sessions (a terminal's Ctrl-C reaches only the parent, which stops
them in order: SIGINT, wait, SIGTERM, wait, SIGKILL) and get SIGTERM from the kernel if the
parent dies, even by SIGKILL (``PR_SET_PDEATHSIG``, Linux), so none is left behind.
:func:`start_process` / :func:`stop_processes` are the same steps for single processes (tests,
benchmarks). No rclpy here.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dinno_ros.process_spec import ProcessSpec, command_line, process_command

_CLEAN_EXIT_CODES = {0, -signal.SIGINT, -signal.SIGTERM, 128 + signal.SIGINT, 128 + signal.SIGTERM}


_EXEC_WITH_PARENT_DEATH_SIGNAL = (
    "import ctypes, os, signal, sys\n"
    "if sys.platform.startswith('linux'):\n"
    "    ctypes.CDLL(None).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(143)  # dinno-team died before the prctl\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)
"""A tiny launcher: asks the kernel to SIGTERM the process when dinno-team dies, then execs the
real command (same PID). Thread-safe, unlike a ``preexec_fn``: dinno-team's rclpy and rich
threads are already running when it starts children."""


def _with_parent_death_signal(command: list[str], python: str) -> list[str]:
    return [python, "-c", _EXEC_WITH_PARENT_DEATH_SIGNAL, str(os.getpid()), *command]


@dataclass
class Child:
    """One started process and what happened to it."""

    spec: ProcessSpec
    command: list[str]
    log_path: Path
    params_file: str
    popen: subprocess.Popen | None = None
    started_at: float = 0.0
    exit_code: int | None = None
    ended_at: float | None = None
    state: str = "starting"
    signals_sent: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.popen is not None and self.exit_code is None

    @property
    def failed(self) -> bool:
        return self.state in ("crashed", "killed", "failed", "failed to start")


class Supervisor:
    """Starts, watches and stops a team's processes."""

    def __init__(self, processes: Sequence[ProcessSpec], params_files: dict[str, str], log_dir: Path,
                 env: dict[str, str], python: str = sys.executable) -> None:
        self.env = env
        self.python = python
        log_dir.mkdir(parents=True, exist_ok=True)
        self.children = [
            Child(spec=process, command=process_command(process, python, params_files[process.key]),
                  log_path=log_dir / f"{process.key}.log", params_file=params_files[process.key])
            for process in processes
        ]

    @property
    def robots(self) -> list[Child]:
        return [c for c in self.children if c.spec.role == "robot"]

    def start(self) -> None:
        for child in self.children:
            with open(child.log_path, "wb") as log:
                log.write(f"$ {command_line(child.command)}\n".encode())
                log.flush()
                try:
                    child.popen = subprocess.Popen(
                        _with_parent_death_signal(child.command, self.python), stdin=subprocess.DEVNULL,
                        stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
                    )
                except OSError as error:
                    child.state, child.error = "failed to start", str(error)
                    continue
            child.started_at = time.monotonic()
            child.state = "running"

    def poll(self) -> list[Child]:
        """Collect exits; returns the children that exited since the last call."""
        exited = []
        for child in self.children:
            if child.running and child.popen.poll() is not None:
                child.exit_code = child.popen.returncode
                child.ended_at = time.monotonic()
                child.state = self._exit_state(child)
                exited.append(child)
        return exited

    def _exit_state(self, child: Child) -> str:
        code = child.exit_code
        if "SIGKILL" in child.signals_sent:
            return "killed"
        if not child.signals_sent:
            return "finished" if code == 0 else "crashed"
        return "stopped" if code in _CLEAN_EXIT_CODES else "failed"

    def all_robots_exited(self) -> bool:
        return all(not c.running for c in self.robots)

    def signal_running(self, sig: signal.Signals) -> None:
        for child in self.children:
            if child.running:
                try:
                    child.popen.send_signal(sig)
                except ProcessLookupError:
                    continue
                child.signals_sent.append(sig.name)
                if child.state == "running":
                    child.state = "stopping"

    @property
    def any_running(self) -> bool:
        return any(c.running for c in self.children)

    @property
    def killed_any(self) -> bool:
        return any("SIGKILL" in c.signals_sent for c in self.children)

    def summary(self, results_dir: Path) -> dict[str, Any]:
        out = {}
        for child in self.children:
            out[child.spec.key] = {
                "role": child.spec.role,
                "node": child.spec.fully_qualified_name,
                "state": child.state,
                "exit_code": child.exit_code,
                "signals_sent": child.signals_sent,
                "seconds": None if child.ended_at is None else round(child.ended_at - child.started_at, 3),
                "command": command_line(child.command),
                "params_file": _relative(child.params_file, results_dir),
                "log": _relative(child.log_path, results_dir),
                **({"error": child.error} if child.error else {}),
            }
        return out


def _relative(path: str | Path, base: Path) -> str:
    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        return str(path)


class StopSignals:
    """SIGINT/SIGTERM handlers: the first asks for a stop, later ones hurry it along."""

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self.count = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.received is None:
            self.received = signal.Signals(signum)


def clean_fastdds_shm(env: dict[str, str]) -> str:
    """Run Fast DDS' shared-memory cleaner in a subprocess; returns its report.

    Subprocess, not in-process: the cleaner probes lock files with fcntl locks, and closing
    such a file in a process that holds a lock on it would drop that process's own lock.
    """
    candidates = [Path(sys.prefix) / "tools" / "fastdds"]
    candidates += [Path(p) / "tools" / "fastdds" for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    for tools in candidates:
        if (tools / "shm" / "clean.py").is_file():
            code = "import sys; sys.path.insert(0, sys.argv[1]); from shm.clean import Clean; Clean().run(False)"
            command = [sys.executable, "-c", code, str(tools)]
            break
    else:
        fastdds = shutil.which("fastdds", path=env.get("PATH"))
        if fastdds is None:
            return "Fast DDS shm cleaner not found; run `fastdds shm clean` by hand"
        command = [fastdds, "shm", "clean"]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"fastdds shm clean failed: {error}"
    return (done.stdout + done.stderr).strip().replace("\n", "; ")




def start_process(command: list[str], env: dict[str, str] | None = None,
                  log_path: str | Path | None = None) -> subprocess.Popen:
    """Start one process (e.g. a robot's :func:`~dinno_ros.process_spec.process_command`); its
    stdout and stderr go to ``log_path`` (or are inherited). The environment is passed through
    unchanged: the ros-* wheels' re-exec hook needs LD_LIBRARY_PATH and its marker together."""
    out = open(log_path, "wb") if log_path is not None else None  # noqa: SIM115 - owned by the child
    try:
        return subprocess.Popen(command, env=env if env is not None else dict(os.environ),
                                stdout=out, stderr=subprocess.STDOUT if out else None)
    finally:
        if out is not None:
            out.close()


def stop_processes(processes: Sequence[subprocess.Popen], sig: int = signal.SIGINT,
                   timeout: float = 30.0) -> list[int | None]:
    """Send ``sig`` to each running process, wait up to ``timeout`` s, kill what is left; exit codes
    (None for a killed one)."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(sig)
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            codes.append(None)
    return codes
