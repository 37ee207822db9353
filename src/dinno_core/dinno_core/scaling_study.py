"""The paper's scaling study: rounds until a team reaches a target accuracy, against team size.

One experiment config (``configs/mnist_scaling.yaml``: DiNNO with the paper's MNIST settings and
the centralized reference, on random disk graphs with algebraic connectivity ≈ 1) is run once
per team size; only the graph's ``num_robots`` changes. The target is either fixed
(``--target 0.97``, the paper's on full MNIST) or the centralized model's final accuracy minus
``--below-centralized`` (one point by default, for the 10k-digit subset). Each size's results
folder is a plain ``dinno-experiment`` folder; the study adds ``scaling.json`` and
``rounds_to_target.png``. Run again, it reuses every folder that holds the results of the same
config, so a stopped study goes on where it stopped.

    python -m dinno_core.scaling_study [--config mnist_scaling.yaml] [--robots 10 20 ... 100]
        [--rounds R] [--eval-every E] [--target A | --below-centralized 0.01] [--out results/mnist_scaling]
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console

from dinno_core.config import ConfigError, ExperimentConfig, is_centralized, load_experiment_config, validate
from dinno_core.experiment import run_experiment

DEFAULT_SIZES = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
METRIC = "accuracy"


def rounds_to_target(curves: dict[str, list[float]], target: float, metric: str = METRIC) -> int | None:
    """The first evaluated round whose mean-over-robots ``metric`` reaches ``target``; None if none did."""
    for round_index, value in zip(curves["round"], curves.get(metric, [])):
        if value >= target:
            return int(round_index)
    return None


def sized(config: ExperimentConfig, num_robots: int, algorithms: list[str]) -> ExperimentConfig:
    """``config`` for a team of ``num_robots`` with only ``algorithms``, named after the size."""
    data = config.dump()
    data["graph"] = {**data["graph"], "num_robots": num_robots}
    config = validate(ExperimentConfig, data, f"the study's config for N={num_robots}")
    return config.model_copy(update={
        "name": f"{config.name}_n{num_robots}",
        "algorithms": {name: config.algorithms[name] for name in algorithms},
    })


def run_or_reuse(config: ExperimentConfig, folder: Path, console: Console) -> dict[str, Any]:
    """``run_experiment(config, folder)``, unless ``folder`` already holds the results of exactly this
    config (a study stopped part-way goes on where it stopped)."""
    try:
        previous = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError):
        previous = None
    if isinstance(previous, dict) and previous.get("config") == config.dump():
        console.print(f"{config.name}: reusing the results in {folder}")
        return previous
    return run_experiment(config, folder, console)


def plot(study: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for name, rows in study["rounds_to_target"].items():
        sizes = [int(n) for n, r in rows.items() if r is not None]
        axes.plot(sizes, [rows[str(n)] for n in sizes], "o-", label=f"{name} (this package)")
    axes.plot([10, 100], [600, 1300], "k--", alpha=0.5, label="paper, full MNIST to 97% (approx.)")
    axes.set_xlabel("robots N (random disk graph, λ2 ≈ 1)")
    axes.set_ylabel(f"rounds to {study['metric']} ≥ {study['target']:.3f}")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dinno_core.scaling_study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None, help="experiment YAML (default: mnist_scaling.yaml)")
    parser.add_argument("--robots", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--rounds", type=int, default=None, help="override the number of rounds")
    parser.add_argument("--eval-every", type=int, default=None,
                        help="override how often the robots are evaluated (the resolution of rounds to target)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--target", type=float, default=None, help="fixed target accuracy (the paper: 0.97)")
    target.add_argument("--below-centralized", type=float, default=0.01,
                        help="target = centralized final accuracy minus this (default 0.01)")
    parser.add_argument("--out", type=Path, default=Path("results/mnist_scaling"))
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    try:
        path = args.config or Path(str(resources.files("dinno_core") / "configs" / "mnist_scaling.yaml"))
        config = load_experiment_config(path)
        overrides = {"rounds": args.rounds, "eval_every": args.eval_every}
        overrides = {name: value for name, value in overrides.items() if value is not None}
        if overrides:
            config = validate(ExperimentConfig, {**config.dump(), **overrides}, f"{path} with the command line's overrides")
        central = [name for name, algorithm in config.algorithms.items() if is_centralized(algorithm)]
        team = [name for name in config.algorithms if name not in central]
        if args.target is None and not central:
            raise ConfigError("--below-centralized needs a centralized algorithm in the config (or give --target)")
        if not team or min(args.robots) < 2:
            raise ConfigError("the study needs a team algorithm in the config and --robots of at least 2")
        sizes = [sized(config, n, team) for n in args.robots]  # every size checked before anything runs
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    study: dict[str, Any] = {"config": config.dump(), "metric": METRIC, "sizes": args.robots}
    if args.target is not None:
        study["target"] = args.target
    else:
        reference = run_or_reuse(sized(config, args.robots[0], central), args.out / "centralized", console)
        reached = reference["algorithms"][central[0]]["final"][METRIC]
        study.update(centralized_accuracy=reached, target=reached - args.below_centralized)
    console.print(f"target {METRIC}: {study['target']:.4f}")
    study["rounds_to_target"] = {name: {} for name in team}
    study["final_accuracy"] = {name: {} for name in team}
    for sized_config in sizes:
        n = sized_config.num_robots
        results = run_or_reuse(sized_config, args.out / f"n{n}", console)
        for name in team:
            algorithm = results["algorithms"][name]
            study["rounds_to_target"][name][str(n)] = rounds_to_target(algorithm["curves"], study["target"])
            study["final_accuracy"][name][str(n)] = algorithm["final"][METRIC]
        study.setdefault("graphs", {})[str(n)] = results.get("graph")
        (args.out / "scaling.json").write_text(json.dumps(study, indent=2))
        plot(study, args.out / "rounds_to_target.png")
        console.print(f"N={n}: rounds to target {study['rounds_to_target']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
