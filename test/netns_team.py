"""Robot processes on separate "hosts": one Linux network namespace each, with its own /dev/shm
(a private mount namespace), UDP only, veths to a bridge in a namespace of its own, and
nftables rules for loss and cuts. Nothing is created in, or changes, the root namespace.

Used by ``test_ros_netns.py``. Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN), ``ip``, ``unshare``
and ``nft``; :func:`unavailable` says why not when they are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

SUBNET = "10.231.{group}.{host}"
"""Private addresses, only ever inside the namespaces."""


def write_params_file(path: Path, parameters: dict[str, Any]) -> Path:
    """A ROS parameters file for every node (``/**: ros__parameters:``), nested dicts allowed."""
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters}}, sort_keys=False))
    return path


def _run(*command: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=check, capture_output=True, text=True, input=input, timeout=30)


def unavailable() -> str | None:
    """Why network-namespace tests cannot run here (None if they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "unshare", "nft", "mount"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed (apt-get install iproute2 util-linux nftables)"
    probe = f"dinno-probe-{os.getpid()}"
    try:
        _run("ip", "netns", "add", probe)
        try:
            _run("ip", "netns", "exec", probe, "nft", "list", "tables")
            _run("ip", "netns", "exec", probe, "unshare", "--mount", "--propagation", "private",
                 "mount", "-t", "tmpfs", "tmpfs", "/dev/shm")
        finally:
            _run("ip", "netns", "del", probe, check=False)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        return f"cannot create a network namespace with nftables and a private /dev/shm here: {detail.strip()}"
    return None


class NetnsTeam:
    """Robots ``robots`` in namespaces ``<prefix><i>``, linked by a bridge in ``<prefix>sw``
    (which has an address too, for a monitor or an intruder)."""

    _count = 0

    def __init__(self, workdir: Path, robots: list[str], env: dict[str, str], parameters: dict[str, Any]) -> None:
        self.dir = workdir
        self.robots = robots
        NetnsTeam._count += 1
        self.prefix = f"dn{os.getpid() % 100000}t{NetnsTeam._count}"
        self.switch = f"{self.prefix}sw"
        self.group = os.getpid() % 200 + 20
        self.namespaces = {robot: f"{self.prefix}r{i}" for i, robot in enumerate(robots)}
        self.address = {robot: SUBNET.format(group=self.group, host=i + 1) for i, robot in enumerate(robots)}
        self.env = dict(env)
        self.env.update(ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET", FASTDDS_BUILTIN_TRANSPORTS="UDPv4",
                        PYTHONUNBUFFERED="1")
        self.env.pop("ROS_STATIC_PEERS", None)
        self.params_file = write_params_file(workdir / "team.yaml", {
            "team": robots, "results_path": str(workdir / "{robot}.json"), **parameters})
        self.processes: dict[str, subprocess.Popen] = {}
        self._created: list[str] = []

    # ------------------------------------------------------------------ network

    def create(self) -> None:
        _run("ip", "netns", "add", self.switch)
        self._created.append(self.switch)
        sw = ("ip", "-n", self.switch)
        _run(*sw, "link", "set", "lo", "up")
        _run(*sw, "link", "add", "br0", "type", "bridge")
        _run(*sw, "link", "set", "br0", "up")
        _run(*sw, "addr", "add", SUBNET.format(group=self.group, host=254) + "/24", "dev", "br0")
        _run(*sw, "route", "add", "224.0.0.0/4", "dev", "br0")
        for i, robot in enumerate(self.robots):
            ns = self.namespaces[robot]
            _run("ip", "netns", "add", ns)
            self._created.append(ns)
            _run("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"p{i}", "netns", self.switch)
            _run(*sw, "link", "set", f"p{i}", "master", "br0")
            _run(*sw, "link", "set", f"p{i}", "up")
            _run("ip", "-n", ns, "addr", "add", f"{self.address[robot]}/24", "dev", "eth0")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
            self.nft(robot, "add table inet dinno")

    def nft(self, robot: str, script: str) -> None:
        _run("ip", "netns", "exec", self.namespaces[robot], "nft", "-f", "-", input=script + "\n")

    def set_loss(self, robot: str, percent: int) -> None:
        """Drop ``percent`` % of the UDP datagrams the robot sends (each direction of each link
        loses independently: every robot drops its own outgoing datagrams)."""
        self.nft(robot, "flush table inet dinno\n"
                        "add chain inet dinno out { type filter hook output priority 0 ; }\n"
                        f"add rule inet dinno out meta l4proto udp oifname eth0 numgen random mod 100 < {percent} drop")

    def cut(self, robot: str) -> None:
        """The robot's radio goes silent both ways."""
        self.nft(robot, "flush table inet dinno\n"
                        "add chain inet dinno out { type filter hook output priority 0 ; }\n"
                        "add chain inet dinno in { type filter hook input priority 0 ; }\n"
                        "add rule inet dinno out oifname eth0 drop\n"
                        "add rule inet dinno in iifname eth0 drop")

    def restore(self, robot: str) -> None:
        self.nft(robot, "flush table inet dinno")

    def destroy(self) -> None:
        for name in reversed(self._created):
            _run("ip", "netns", "del", name, check=False)
        self._created.clear()

    # ------------------------------------------------------------------ processes

    def command(self, robot: str | None, argv: list[str]) -> list[str]:
        """``argv`` in the robot's namespace (None: the bridge's) with a private, empty /dev/shm."""
        namespace = self.switch if robot is None else self.namespaces[robot]
        return ["ip", "netns", "exec", namespace, "unshare", "--mount", "--propagation", "private",
                "sh", "-c", 'mount -t tmpfs tmpfs /dev/shm && exec "$@"', "sh", *argv]

    def start(self, robot: str, overrides: dict[str, Any]) -> subprocess.Popen:
        argv = [sys.executable, "-m", "dinno_ros.robot_node", "--ros-args", "-r", f"__ns:=/{robot}",
                "--params-file", str(self.params_file), "-p", f"robot_id:={robot}"]
        for name, value in overrides.items():
            literal = "[" + ", ".join(value) + "]" if isinstance(value, list) else str(value).lower() \
                if isinstance(value, bool) else str(value)
            argv += ["-p", f"{name}:={literal}"]
        return self.spawn(robot, robot, argv)

    def spawn(self, robot: str | None, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "wb")  # noqa: SIM115 - owned by the child
        try:
            process = subprocess.Popen(self.command(robot, argv), env=self.env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        self.processes[name] = process
        return process

    def wait(self, timeout: float) -> dict[str, int | None]:
        deadline = time.monotonic() + timeout
        codes: dict[str, int | None] = {}
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                codes[name] = None
        return codes

    def signal(self, names: list[str], sig: int = signal.SIGINT) -> None:
        for name in names:
            process = self.processes[name]
            if process.poll() is None:
                os.killpg(process.pid, sig)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        for process in self.processes.values():
            process.wait(timeout=30)

    def log(self, name: str) -> str:
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else "(no log)"

    def results(self, robot: str) -> dict[str, Any]:
        path = self.dir / f"{robot}.json"
        assert path.exists(), f"{robot} wrote no results; log:\n{self.log(robot)}"
        return json.loads(path.read_text())
