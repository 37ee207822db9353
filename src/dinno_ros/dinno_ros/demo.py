"""The DiNNO mapping demo: a team of robot processes learns one floor-plan map over real ROS 2.

    make demo                                     # = python -m dinno_ros.demo
    python -m dinno_ros.demo [--config YAML] [--out DIR] [--duration S] [--robots N] [--rounds K]

1. Runs the team of ``config/team_mapping_demo.yaml`` (robot nodes + the embedded lidar
   simulator, one process each) with ``dinno-team``'s own machinery (:class:`dinno_ros.team.TeamRun`:
   same bringup, live per-robot table, clean stop, ``team.json``, loss/neighbour-distance plots), bounded
   by ``--duration`` seconds (default 120) or the config's rounds, whichever comes first.
   The simulator records every scan it published (``sim_trace.npz``).
Steps 2-4 are ROS-free core code (:mod:`dinno_core.tasks.mapping.team_analysis`); this module
is the command line.

2. Evaluates each robot's final weights (``robots/<id>.weights.npy``, written by the node) with
   the core's ``MappingTask.evaluate``: validation loss (mean BCE on the validation scans),
   occupancy accuracy and occupied-class IoU on the plan's grid, and the accuracy on the cells
   that robot's own lidar never saw.
3. Trains the baseline offline, in this process, with the core: every robot ALONE (``individual``,
   the core's LocalTraining; same initial weights, minibatch generators, batch size, optimizer,
   learning-rate schedule and gradient steps per round as the team's DiNNO primal step) on
   exactly the scans that robot was sent (replayed from the trace: the same ranges and poses),
   for as many rounds as the team's robots ran. A scan taken while the team was stepping round
   k is in the individual robot's window from round k on (round times from the robots' status
   history): never later than it could have reached the ROS robot, so the schedule favours the
   baseline.
4. Writes ``summary.json`` (per-robot metrics for team and individual, the margins, agreement
   between robots), ``maps.png`` (ground truth, each team robot's map, each individual robot's
   map), and prints a table and the margin.

``ROS_AUTOMATIC_DISCOVERY_RANGE`` defaults to ``LOCALHOST`` when unset (said in the output): the
demo's traffic stays on this machine unless you ask otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

DEFAULT_CONFIG_NAME = "team_mapping_demo.yaml"
DEFAULT_OUT = Path("results") / "demo"
DEFAULT_DURATION = 120.0
METRICS = ("validation_loss", "occupancy_accuracy", "occupancy_iou")
LOWER_IS_BETTER = {"validation_loss"}


def default_config() -> Path:
    """``config/team_mapping_demo.yaml`` of this source tree, else of the installed package share."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "config" / DEFAULT_CONFIG_NAME
        if candidate.is_file():
            return candidate
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("dinno_ros")) / "config" / DEFAULT_CONFIG_NAME
    except Exception:  # noqa: BLE001 - no ament index: report the source-tree path
        return here.parents[3] / "config" / DEFAULT_CONFIG_NAME


# ----------------------------------------------------------------------------- config


def demo_config(path: Path, out_dir: Path, robots: int | None = None, rounds: int | None = None) -> Any:
    """The team config with the demo's overrides: team size, rounds, the simulator's trace file."""
    from dinno_core.config import load_yaml
    from dinno_ros.team_config import team_config_from_dict

    data = load_yaml(path)
    if robots is not None:
        data["robots"] = robots
        if isinstance(data.get("graph"), dict):
            data["graph"] = {k: v for k, v in data["graph"].items() if k != "num_robots"}
    if rounds is not None:
        data["rounds"] = rounds
    simulator = dict(data.get("simulator") or {})
    simulator["parameters"] = {**(simulator.get("parameters") or {}),
                               "trace_path": str((out_dir / "sim_trace.npz").resolve())}
    data["simulator"] = simulator
    config = team_config_from_dict(data, str(path), base_dir=path.parent)
    if config.task.name != "mapping":
        from dinno_core.config import ConfigError

        raise ConfigError(f"{path}: the demo needs the mapping task, got task.name={config.task.name!r}")
    return config


def print_summary(summary: dict[str, Any], console: Console) -> None:
    table = Table(title=f"{summary['name']}: final maps, team (DiNNO over ROS 2) | alone (individual)",
                  title_justify="left")
    for column in ("robot", "rounds", "scans", "val loss", "IoU", "accuracy", "unseen acc"):
        table.add_column(column, justify="left" if column == "robot" else "right", no_wrap=True)

    def fmt(value: Any, spec: str = ".3f") -> str:
        return "-" if value is None else format(value, spec)

    for robot, entry in summary["robots"].items():
        team, alone = entry["team"], entry.get("individual", {})
        pair = [f"{fmt(team.get(m), '.2f' if m != 'validation_loss' else '.3f')}|"
                f"{fmt(alone.get(m), '.2f' if m != 'validation_loss' else '.3f')}"
                for m in ("validation_loss", "occupancy_iou", "occupancy_accuracy", "unseen_accuracy")]
        table.add_row(robot.removeprefix("robot_"), str(entry.get("rounds_done")), str(entry.get("scans_used")), *pair)
    console.print(table)
    initial = summary["initial"]["validation_loss"]
    console.print(f"untrained network: validation loss {initial:.3f}", highlight=False)
    comparison = summary.get("comparison")
    if comparison:
        verdict = ("every team robot's map beats every individual robot's" if comparison["every_robot_beats_every_individual"]
                   else "every team robot beats its own individual counterpart" if comparison["every_robot_beats_its_individual"]
                   else "the team did NOT beat the individual robots")
        style = "green" if comparison["every_robot_beats_its_individual"] else "red"
        console.print(Text(
            f"{verdict}: validation loss worst team robot {comparison['worst_team_robot']:.3f} vs best individual "
            f"{comparison['best_individual_robot']:.3f} (margin {comparison['margin_worst_team_vs_best_individual']:+.3f}); "
            f"means {summary['team_mean']['validation_loss']:.3f} vs {summary['individual_mean']['validation_loss']:.3f} "
            f"(individual/team = {comparison['ratio_mean_individual_to_mean_team']:.2f}x); occupied IoU worst team "
            f"{comparison['iou_worst_team_robot']:.2f} vs best individual {comparison['iou_best_individual_robot']:.2f}",
            style=style))
    tracking = summary.get("path_tracking")
    if tracking and tracking["max_distance"]:
        console.print(f"robots driven by cmd_vel (path follower): at most {max(tracking['max_distance']):.2f} m and "
                      f"on average {sum(tracking['mean_distance']) / len(tracking['mean_distance']):.2f} m from their paths, "
                      f"{min(tracking['distance_driven']):.0f}-{max(tracking['distance_driven']):.0f} m driven each",
                      highlight=False)
    radio = summary.get("radio") or {}
    if radio.get("team_bytes_per_second") is not None:
        console.print(f"on the radio: {radio['team_bytes_per_second'] / 1e3:.0f} kB/s for the team, "
                      f"{radio['mean_bytes_per_round_per_robot'] / 1e3:.1f} kB per robot per round "
                      f"({radio['bytes_sent'] / 1e6:.1f} MB in all; weight payloads only)", highlight=False)
    a = summary["agreement"]
    console.print(f"agreement between the team's robots: consensus error {a['consensus_error']:.4g} "
                  f"(weight norm {a['weight_norm']:.4g}), max pairwise mean |p_i - p_j| "
                  f"{a['max_pairwise_mean_abs_map_difference']:.4f}, cells where robots disagree "
                  f"{100 * a['cells_where_robots_disagree']:.2f} %", highlight=False)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dinno-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=None,
                        help=f"team config (default: config/{DEFAULT_CONFIG_NAME})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results folder (default {DEFAULT_OUT})")
    parser.add_argument("--duration", type=float, default=DEFAULT_DURATION,
                        help=f"stop the team after this many seconds, start-up included (default {DEFAULT_DURATION:g})")
    parser.add_argument("--robots", type=int, default=None, help="team size (default: the config's)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per robot (default: the config's)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the offline individual-robot baseline")
    parser.add_argument("--quiet", action="store_true", help="no live table (a summary line every 10 s)")
    args = parser.parse_args(argv)
    console = Console(stderr=True, soft_wrap=True)
    from dinno_core.config import ConfigError
    from dinno_core.tasks.mapping.team_analysis import analyse
    from dinno_ros.team import EXIT_CONFIG, TeamRun

    if args.duration <= 0:
        console.print("[red]--duration must be positive[/red]")
        return EXIT_CONFIG
    if args.robots is not None and args.robots < 1:
        console.print("[red]--robots must be >= 1[/red]")
        return EXIT_CONFIG
    if not os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE"):
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        console.print("ROS_AUTOMATIC_DISCOVERY_RANGE was unset: using LOCALHOST (no discovery traffic leaves this "
                      "machine; set it to SUBNET to watch from another computer)", highlight=False)
    config_path = args.config or default_config()
    out_dir = args.out.resolve()
    try:
        config = demo_config(config_path, out_dir, args.robots, args.rounds)
    except ConfigError as error:
        console.print(Text(str(error), style="red"))
        return EXIT_CONFIG
    (out_dir / "sim_trace.npz").unlink(missing_ok=True)
    (out_dir / "summary.json").unlink(missing_ok=True)

    epoch: dict[str, float] = {}

    class DemoRun(TeamRun):
        def prepare(self):  # the status history's time 0 is taken right after this returns
            supervisor = super().prepare()
            epoch["wall"] = time.time()
            return supervisor

    run = DemoRun(config, out_dir, args.duration, console, live=console.is_terminal and not args.quiet)
    try:
        run.check()
    except ConfigError as error:
        console.print(Text(f"{config_path}: {error}", style="red"))
        return EXIT_CONFIG
    console.print(f"DiNNO mapping demo: {config.num_robots} robots on plan {config.task.plan!r}, "
                  f"{config.algorithm.kind}, graph {config.graph.kind}, at most {args.duration:g} s "
                  f"(config {config_path})", highlight=False)
    result = run.run()
    code = result.exit_code
    try:
        summary = analyse(config, out_dir, result.team, epoch.get("wall"),
                          lambda line: console.print(line, highlight=False), baseline=not args.no_baseline)
    except Exception as error:  # noqa: BLE001 - report what went wrong, with the team's own status
        console.print(Text(f"demo analysis failed: {type(error).__name__}: {error}", style="red"))
        return code or 1
    print_summary(summary, console)
    console.print(f"results: {out_dir} (summary.json, maps.png, team.json, training_loss.png, "
                  f"neighbour_distance.png, logs/)", highlight=False)
    print(out_dir / "summary.json")
    return code


if __name__ == "__main__":
    sys.exit(main())
