"""dinno-team: run a team of DiNNO robot nodes (one process each) on this machine.

    dinno-team CONFIG.yaml [--out DIR] [--duration S] [--quiet]

Starts every robot node (and the simulator, when the config has one) as its own process
(``python -m <module> --ros-args ...`` with a params file written from the team spec), shows
live progress from the robots' ``dinno/status`` topics, and stops everything cleanly when every
robot has finished its rounds, ``--duration`` has passed, or on Ctrl-C / SIGTERM: SIGINT,
wait ``shutdown.sigint_timeout``, SIGTERM, wait ``shutdown.sigterm_timeout``, SIGKILL. A second
Ctrl-C skips to the next step. Children run in their own sessions (a terminal's Ctrl-C reaches
only dinno-team, which stops them in order) and get SIGTERM from the kernel if dinno-team
itself dies, even by SIGKILL (``PR_SET_PDEATHSIG``, Linux), so none is left behind.

Results folder (``--out``, default the config's ``results_dir`` or ``results/<name>``)::

    team.json                 config, graph, per-process exit status and commands, each robot's
                              results (the node's results_path JSON), status history curves
    training_loss.png, neighbour_distance.png  one curve per robot (from the status history)
    config.yaml               the validated config
    params/<robot>.params.yaml                 the ROS parameters each process got
    logs/<robot>.log          each process's stdout and stderr; logs/ros/ holds ROS's own log
                              files unless ROS_LOG_DIR is set
    robots/<robot>.json       written by each robot node on exit

Exit status: 0 when the team ran to the end (all rounds, or --duration), 1 when a process
crashed, had to be killed or failed to stop cleanly, 2 for a bad config, 130 / 143 when stopped
by SIGINT / SIGTERM without any failure.

Shared memory: a Fast DDS participant killed with SIGKILL leaves ``/dev/shm/fastdds_*`` files.
After a SIGKILL dinno-team runs Fast DDS' own cleaner (``fastdds shm clean``), which removes
only segments and ports whose owning process is gone (their lock files are free), never those
of live processes. The file names carry no PID, so it can't be limited to the children it
killed: stale files of other dead processes on the machine go too (harmless).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.live import Live
from rich.text import Text

from dinno_ros.progress import TeamProgress, create_status_monitor
from dinno_core.config import ConfigError, check_writable
from dinno_core.plots import save_curves
from dinno_core.checkpoint import json_safe, write_json
from dinno_ros.message_auth import TEAM_KEY_ENV, needs_team_key, provide_team_key
from dinno_ros.team_config import TeamConfig, load_team_config
from dinno_ros.process_spec import write_params_files
from dinno_ros.supervisor import Child, StopSignals, Supervisor, clean_fastdds_shm
from dinno_ros.team_spec import build_team_spec, check_robot_parameters

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2


def plot_history(history: dict[str, dict[str, list]], out_dir: Path, title: str) -> list[Path]:
    """``training_loss.png`` and ``neighbour_distance.png``: one curve per robot against round."""
    written = []
    for metric in ("training_loss", "neighbour_distance"):
        series = {robot: (curves["round"], curves[metric]) for robot, curves in history.items()}
        # Log scale over the positive values (a robot's first neighbour distance is exactly 0).
        log_scale = any(v is not None and math.isfinite(v) and v > 0 for _, ys in series.values() for v in ys)
        written.append(save_curves(series, metric, f"{title}: {metric.replace('_', ' ')} per robot",
                                   out_dir / f"{metric}.png", log_scale, legend_size="small"))
    return written


def _read_json(path: Path) -> tuple[Any, str | None]:
    try:
        return json.loads(path.read_text()), None
    except FileNotFoundError:
        return None, f"{path} was not written"
    except (OSError, ValueError) as error:
        return None, f"{path}: {error}"


@dataclass
class TeamResult:
    """What a team run produced: the exit status (see the module docstring) and everything
    written to ``team.json``."""

    exit_code: int
    team: dict[str, Any]


class TeamRun:
    """One run of a team: start, watch, stop, collect (:meth:`run` returns a :class:`TeamResult`)."""

    def __init__(self, config: TeamConfig, out_dir: Path, duration: float | None, console: Console,
                 live: bool, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.out_dir = out_dir.resolve()
        self.duration = duration
        self.console = console
        self.live = live
        self.env = dict(os.environ if env is None else env)  # passed through; keys only added
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.env.setdefault("ROS_LOG_DIR", str(self.out_dir / "logs" / "ros"))
        self.spec = build_team_spec(config, results_dir=self.out_dir)
        self.stop_reason = ""

    def prepare(self) -> Supervisor:
        out = self.out_dir
        (out / "robots").mkdir(parents=True, exist_ok=True)
        for robot in self.spec.robots:  # a stale file from an earlier run must not pass as this run's
            (out / "robots" / f"{robot}.json").unlink(missing_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(self.config.dump(), sort_keys=False))
        params = write_params_files(self.spec.processes, out / "params")
        self._provide_team_key()
        return Supervisor(self.spec.processes, params, out / "logs", self.env)

    def check(self) -> None:
        """Every robot's parameters pass the node's own validation (with the team key this run
        will create, if it creates one): :class:`ConfigError` otherwise, before anything starts."""
        check_robot_parameters(self.spec, key_to_come=needs_team_key(self.config.parameters, self.env))

    def _provide_team_key(self) -> None:
        """Robots sign their weights with a team key: unless the config or the environment names one
        (``parameters.team_key_file`` / ``DINNO_TEAM_KEY_FILE``) or asks for ``auth: open``, this
        run's robots share ``<out>/team.key`` (created once, mode 600, kept for later runs)."""
        path = provide_team_key(self.config.parameters, self.env, self.out_dir)
        if path is not None:
            self.env[TEAM_KEY_ENV] = str(path)

    def run(self) -> TeamResult:
        """Start, watch, stop and collect; the exit status and the results."""
        supervisor = self.prepare()
        progress = TeamProgress(self.spec.robots, self.spec.rounds,
                                extra=[p.key for p in self.spec.processes if p.role != "robot"])
        started = time.monotonic()
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        with StopSignals() as signals:
            context = rclpy.Context()
            rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
            executor = SingleThreadedExecutor(context=context)
            monitor = None
            try:
                # The monitor first, so that it is discovered by the time the robots publish.
                monitor = create_status_monitor(
                    progress, {p.key: p.status_topic for p in self.spec.robot_processes}, context=context)
                executor.add_node(monitor)
                supervisor.start()
                self._sync_states(supervisor, progress)
                self._watch(supervisor, progress, executor, signals, started)
                self._stop(supervisor, progress, executor, signals)
            finally:
                if supervisor.any_running:  # an exception above: never leave children behind
                    supervisor.signal_running(signal.SIGKILL)
                    for child in supervisor.children:
                        if child.popen is not None:
                            child.popen.wait()
                    supervisor.poll()
                executor.shutdown()
                if monitor is not None:
                    monitor.destroy_node()
                rclpy.try_shutdown(context=context)
        shm_report = clean_fastdds_shm(self.env) if supervisor.killed_any else None
        self._sync_states(supervisor, progress)
        results = self._collect(supervisor, progress, time.monotonic() - started, signals.received, shm_report)
        return TeamResult(self._exit_code(supervisor, signals.received), results)

    # -- phases ---------------------------------------------------------------------------

    def _display(self):
        if self.live:
            return Live(console=self.console, refresh_per_second=4, transient=False)
        return None

    def _watch(self, supervisor: Supervisor, progress: TeamProgress, executor: Any,
               signals: StopSignals, started: float) -> None:
        live = self._display()
        last_line = time.monotonic()
        if live is not None:
            live.start()
        try:
            while True:
                executor.spin_once(timeout_sec=0.1)
                for child in supervisor.poll():
                    self._report_exit(child)
                self._sync_states(supervisor, progress)
                if signals.received is not None:
                    self.stop_reason = f"{signals.received.name} received"
                    break
                if self.duration is not None and time.monotonic() - started >= self.duration:
                    self.stop_reason = f"duration {self.duration:g} s passed"
                    break
                if supervisor.all_robots_exited():
                    self.stop_reason = "every robot exited" if any(c.failed for c in supervisor.robots) \
                        else "every robot finished its rounds"
                    break
                if live is not None:
                    live.update(progress.table(self.spec.name))
                elif time.monotonic() - last_line >= 10.0:
                    self.console.print(progress.summary_line(), highlight=False, soft_wrap=True)
                    last_line = time.monotonic()
            if live is not None:
                live.update(progress.table(self.spec.name))
        finally:
            if live is not None:
                live.stop()

    def _report_exit(self, child: Child) -> None:
        if child.failed:
            self.console.print(Text(f"{child.spec.key} {child.state} (exit code {child.exit_code}); "
                                    f"see {child.log_path}", style="red"))

    def _stop(self, supervisor: Supervisor, progress: TeamProgress, executor: Any, signals: StopSignals) -> None:
        if not supervisor.any_running:
            return
        self.console.print(f"stopping ({self.stop_reason})", highlight=False)
        timeouts = self.spec.shutdown
        steps = [(signal.SIGINT, timeouts["sigint_timeout"]), (signal.SIGTERM, timeouts["sigterm_timeout"]),
                 (signal.SIGKILL, 10.0)]
        for sig, timeout in steps:
            if not supervisor.any_running:
                break
            supervisor.signal_running(sig)
            if sig is not signal.SIGINT:
                running = ", ".join(c.spec.key for c in supervisor.children if c.running)
                self.console.print(f"[yellow]sent {sig.name} to {running}[/yellow]", highlight=False)
            self._sync_states(supervisor, progress)
            signals_before = signals.count
            deadline = time.monotonic() + timeout
            while supervisor.any_running and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.05)  # keeps taking the robots' last statuses
                for child in supervisor.poll():
                    self._report_exit(child)
                if signals.count > signals_before:  # another Ctrl-C: go to the next step now
                    break
        supervisor.poll()

    def _sync_states(self, supervisor: Supervisor, progress: TeamProgress) -> None:
        for child in supervisor.children:
            entry = progress.robots.get(child.spec.key) or progress.extra.get(child.spec.key)
            state = child.state
            if state == "running" and entry.state in ("starting", "running"):
                continue  # the monitor tells starting (no status yet) from running
            detail = "" if child.exit_code is None else f"exit {child.exit_code}"
            progress.set_state(child.spec.key, state, detail)

    def _collect(self, supervisor: Supervisor, progress: TeamProgress, seconds: float,
                 received: signal.Signals | None, shm_report: str | None) -> dict[str, Any]:
        out = self.out_dir
        robots: dict[str, Any] = {}
        for process in self.spec.robot_processes:
            data, problem = _read_json(Path(process.parameters["results_path"]))
            entry = progress.robots[process.key]
            robots[process.key] = {
                "results": data,
                **({"results_error": problem} if problem else {}),
                "last_status": {
                    "round": entry.round, "training_loss": json_safe(float(entry.training_loss)),
                    "neighbour_distance": json_safe(float(entry.neighbour_distance)), "rho": json_safe(float(entry.rho)),
                    "round_rate": json_safe(float(entry.round_rate)), "messages_dropped": entry.messages_dropped,
                    "neighbours_heard": list(entry.neighbours_heard),
                },
            }
        team = {
            "name": self.spec.name,
            "stop_reason": self.stop_reason,
            "signal": None if received is None else received.name,
            "seconds": round(seconds, 3),
            "robot_ids": list(self.spec.robots),
            "graph": self.spec.graph,
            "config": self.spec.config,
            "processes": supervisor.summary(out),
            "robots": robots,
            "history": progress.history(),
            "status_messages": progress.messages,
            "shm_cleanup": shm_report,
        }
        path = out / "team.json"
        write_json(path, team)
        try:
            team["figures"] = [p.name for p in plot_history(team["history"], out, self.spec.name)]
        except Exception as error:  # plots are a convenience; team.json is the result
            team["figures_error"] = str(error)
        write_json(path, team)
        self._print_summary(team)
        return team

    def _print_summary(self, team: dict[str, Any]) -> None:
        self.console.print(f"{team['name']}: {team['stop_reason']} after {team['seconds']:.1f} s", highlight=False)
        for key, info in team["processes"].items():
            colour = "red" if info["state"] in ("crashed", "killed", "failed", "failed to start") else "green"
            self.console.print(f"  [{colour}]{key}: {info['state']}[/{colour}] (exit code {info['exit_code']}, "
                               f"log {info['log']})", highlight=False)
        for robot, info in team["robots"].items():
            if "results_error" in info:
                self.console.print(Text(f"  {robot}: {info['results_error']}", style="yellow"))
        if team["shm_cleanup"]:
            self.console.print(f"  shared memory: {team['shm_cleanup']}", highlight=False)
        self.console.print(f"results written to {self.out_dir / 'team.json'}", highlight=False)

    @staticmethod
    def _exit_code(supervisor: Supervisor, received: signal.Signals | None) -> int:
        if any(c.failed for c in supervisor.children):
            return EXIT_FAILURE
        if received is not None:
            return 128 + int(received)
        return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dinno-team", description="Run a team of DiNNO robot nodes, one process each, on this machine.")
    parser.add_argument("config", type=Path, help="team config YAML (e.g. config/team_convex.yaml)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (default: the config's results_dir, else results/<name>)")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop the team after this many seconds (default: when every robot is done)")
    parser.add_argument("--quiet", action="store_true", help="no live table (a summary line every 10 s)")
    args = parser.parse_args(argv)
    console = Console(stderr=True, soft_wrap=True)  # long messages and paths stay on one line in logs
    try:
        config = load_team_config(args.config)
    except ConfigError as error:
        console.print(Text(str(error), style="red"))
        return EXIT_CONFIG
    if args.duration is not None and args.duration <= 0:
        console.print("[red]--duration must be positive[/red]")
        return EXIT_CONFIG
    if config.rounds == 0 and args.duration is None:
        console.print("rounds is 0: the team runs until Ctrl-C (or use --duration)", highlight=False)
    out_dir = args.out or Path(config.results_dir or Path("results") / config.name)
    try:
        run = TeamRun(config, out_dir, args.duration, console, live=console.is_terminal and not args.quiet)
        run.check()  # every robot's own validation, before anything starts
        check_writable(out_dir, "--out" if args.out else "results_dir")
    except ConfigError as error:
        console.print(Text(f"{args.config}: {error}", style="red"))
        return EXIT_CONFIG
    return run.run().exit_code


if __name__ == "__main__":
    sys.exit(main())
