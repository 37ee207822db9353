"""Offline experiments: run every configured algorithm from the same start, record curves,
write ``results.json`` and plots. Entry point: ``dinno-experiment CONFIG.yaml [--out DIR]``."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dinno_core.algorithms import AlgorithmConfig, LocalConfig, build_algorithm
from dinno_core.config import (
    ConfigError,
    ExperimentConfig,
    build_task,
    check_writable,
    is_centralized,
    load_experiment_config,
    set_up_model,
)
from dinno_core.graphs import StaticGraph, build_graph, describe
from dinno_core.params import FlatModel
from dinno_core.plots import plot_curves
from dinno_core.checkpoint import write_json
from dinno_core.quantization import WIRE_ENCODINGS
from dinno_core.tasks.base import Task
from dinno_core.team import SimulatedTeam, TeamData, consensus_error


@dataclass
class Curves:
    """Metric curves of one algorithm; each metric is the mean over robots at each evaluation."""

    rounds: list[int] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)

    def add(self, round_index: int, values: dict[str, float]) -> None:
        self.rounds.append(round_index)
        for name, value in values.items():
            self.metrics.setdefault(name, []).append(value)


def initial_weights(config: ExperimentConfig, dtype: torch.dtype) -> tuple[Task, FlatModel, torch.Tensor]:
    """A task and model built from the experiment seed; every algorithm starts from these weights."""
    setup = set_up_model(config.task, config.num_robots, config.seed, dtype)
    return setup.task, setup.flat, setup.theta0


def evaluate(task: Task, flat: FlatModel, theta: torch.Tensor) -> dict[str, torch.Tensor]:
    metrics = task.evaluate(lambda inputs: flat.forward(theta, inputs.to(theta.device)))
    if task.headline_metric not in metrics:
        raise RuntimeError(f"task {task.name} did not report {task.headline_metric}")
    return {name: value.detach().cpu().double() for name, value in metrics.items()}


RoundReport = Callable[[int, "dict[str, float] | None"], None]
"""``report(rounds_done, values)``: called after every round; ``values`` are the evaluation's
metrics on evaluation rounds, else None."""


def run_algorithm(config: ExperimentConfig, name: str, algorithm_config: AlgorithmConfig,
                  theta0: torch.Tensor, report: RoundReport | None = None,
                  ) -> tuple[Curves, dict[str, Any], torch.Tensor, Task]:
    """Train one algorithm for ``config.rounds`` rounds; returns its curves, final values, weights and task."""
    setup = set_up_model(config.task, config.num_robots, config.seed, theta0.dtype, config.device)
    task, flat = setup.task, setup.flat
    if is_centralized(algorithm_config):
        theta = theta0[None, :]
        data = TeamData([task.pooled_data()], config.seed)
        graph = StaticGraph(nx.empty_graph(1))
    else:
        theta = theta0.repeat(config.num_robots, 1)
        data = TeamData(task.robot_data(config.num_robots), config.seed)
        graph = build_graph(config.graph)
    algorithm = build_algorithm(algorithm_config, flat, theta.to(config.device))

    def current_models(inputs: torch.Tensor) -> torch.Tensor:  # on-policy tasks act with these
        return flat.forward(algorithm.theta, inputs.to(algorithm.theta.device))

    task.advance(0, current_models)
    team = SimulatedTeam(algorithm, graph, data, config.wire_encoding, config.wire_delta)
    curves = Curves()
    training_loss = 0.0
    rejected = 0
    for round_index in range(config.rounds):
        if round_index > 0:
            task.advance(round_index, current_models)
        stats = team.run_round(task.positions())
        training_loss = float(stats.training_loss.mean())
        rejected += int(stats.rejected.sum())
        last = round_index == config.rounds - 1
        values: dict[str, float] | None = None
        if (round_index + 1) % config.eval_every == 0 or last:
            metrics = evaluate(task, flat, algorithm.theta)
            values = {metric: float(value.mean()) for metric, value in metrics.items()}
            values["training_loss"] = training_loss
            values["consensus_error"] = consensus_error(algorithm.theta)
            if task.environment_steps_per_round:
                values["environment_steps"] = float((round_index + 1) * task.environment_steps_per_round)
            curves.add(round_index + 1, values)
        if report is not None:
            report(round_index + 1, values)
    final_metrics = evaluate(task, flat, algorithm.theta)
    final: dict[str, Any] = {metric: float(value.mean()) for metric, value in final_metrics.items()}
    final.update({f"{metric}_per_robot": value.tolist() for metric, value in final_metrics.items()})
    final["consensus_error"] = consensus_error(algorithm.theta)
    final["rejected_updates"] = rejected
    if not isinstance(algorithm_config, LocalConfig):  # individual and centralized send nothing
        final["bytes_per_message"] = team.bytes_per_message
        wire = team.wire
        final["wire"] = {"encoding": wire.encoding, "delta": wire.delta,
                         "key_frame_share": wire.key_frames / max(1, wire.messages),
                         "mean_relative_error": wire.relative_error_sum / max(1, wire.messages)}
    return curves, final, algorithm.theta.detach().cpu(), task


def _worker_run(config: ExperimentConfig, name: str, theta0: torch.Tensor, threads: int,
                queue: Any) -> tuple[Curves, dict[str, Any], torch.Tensor, float]:
    """One algorithm in a worker process of ``run_experiment(jobs > 1)``; progress goes to ``queue``."""
    torch.set_num_threads(threads)
    began = time.perf_counter()
    curves, final, theta, _ = run_algorithm(config, name, config.algorithms[name], theta0,
                                            lambda done, values: queue.put((name, done, values)))
    return curves, final, theta, time.perf_counter() - began


def replay_task(config: ExperimentConfig) -> Task:
    """The task as it stands after ``config.rounds`` rounds (scans taken, coverage): what the
    map figures need when the algorithms ran in other processes."""
    task = build_task(config.task, config.num_robots, config.seed)
    for round_index in range(config.rounds):
        task.advance(round_index)
    return task


def run_experiment(config: ExperimentConfig, out_dir: Path, console: Console | None = None,
                   jobs: int = 1) -> dict[str, Any]:
    """Run every algorithm of ``config``; write ``results.json``, weights and plots under ``out_dir``.

    ``jobs > 1`` runs that many algorithms at once in worker processes (each with
    ``torch_threads``, or its share of the CPU cores, threads); the results are identical to a
    serial run, since every algorithm starts from the same weights and seeds.
    """
    console = console or Console(stderr=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    task0, flat, theta0 = initial_weights(config, dtype)
    headline = task0.headline_metric
    static = config.graph.kind != "disk"
    results: dict[str, Any] = {
        "config": config.dump(),
        "headline_metric": headline,
        "curve_x": "environment_steps" if task0.environment_steps_per_round else "round",
        "num_params": flat.spec.numel,
        "graph": describe(build_graph(config.graph).graph_at(0)) if static else {"kind": "disk", "radius": config.graph.radius},
        "algorithms": {},
    }
    outcomes: dict[str, tuple[Curves, dict[str, Any], torch.Tensor, float]] = {}
    task: Task | None = None
    started = time.perf_counter()
    columns = (TextColumn("{task.description:>12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[status]}"))
    with Progress(*columns, console=console, transient=False) as progress:
        bars = {name: progress.add_task(name, total=config.rounds, status="") for name in config.algorithms}

        def show(name: str, done: int, values: dict[str, float] | None) -> None:
            progress.update(bars[name], completed=done)
            if values is None:
                return
            progress.update(bars[name], status=f"{headline.replace('_', ' ')} {values[headline]:.4g}")
            if not progress.console.is_terminal:  # logs and CI get a line per evaluation
                progress.console.log(f"{name} round {done}/{config.rounds}: "
                                     + ", ".join(f"{k} {v:.4g}" for k, v in values.items()))

        if jobs <= 1 or len(config.algorithms) == 1:
            for name, algorithm_config in config.algorithms.items():
                began = time.perf_counter()
                curves, final, theta, task = run_algorithm(
                    config, name, algorithm_config, theta0, lambda done, values, n=name: show(n, done, values))
                outcomes[name] = (curves, final, theta, time.perf_counter() - began)
        else:
            workers = min(jobs, len(config.algorithms))
            threads = config.torch_threads or max(1, (os.cpu_count() or 1) // workers)
            context = multiprocessing.get_context("spawn")
            with context.Manager() as manager, ProcessPoolExecutor(workers, mp_context=context) as pool:
                queue = manager.Queue()
                futures = {pool.submit(_worker_run, config, name, theta0, threads, queue): name
                           for name in config.algorithms}
                pending = set(futures)
                while pending:
                    finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    while not queue.empty():
                        show(*queue.get())
                    for future in finished:  # a worker's reports are all queued before its future completes
                        outcomes[futures[future]] = future.result()
            task = replay_task(config)
    weights: dict[str, torch.Tensor] = {}
    for name, algorithm_config in config.algorithms.items():  # config order, however they finished
        curves, final, theta, seconds = outcomes[name]
        results["algorithms"][name] = {
            "kind": algorithm_config.kind,
            "curves": {"round": curves.rounds, **curves.metrics},
            "final": final,
            "seconds": seconds,
        }
        weights[name] = theta
    results["seconds"] = time.perf_counter() - started
    results["jobs"] = jobs
    torch.save(weights, out_dir / "weights.pt")
    figures = plot_curves(results, out_dir)
    save_figures = getattr(task, "save_figures", None)
    if callable(save_figures):
        figures += save_figures(weights, flat, out_dir)
    results["figures"] = [str(path) for path in figures]
    write_json(out_dir / "results.json", results)
    return results


def summary_table(results: dict[str, Any]) -> Table:
    metric_names = [m for m in ("validation_loss", "accuracy", "occupancy_iou", "episode_reward", "captures",
                                "action_disagreement", "consensus_error")
                    if any(m in a["final"] for a in results["algorithms"].values())]
    table = Table(title=f"{results['config']['name']}: final values (mean over robots)")
    table.add_column("algorithm")
    for metric in metric_names:
        table.add_column(metric, justify="right")
    for name, algorithm in results["algorithms"].items():
        table.add_row(name, *[f"{algorithm['final'].get(m, float('nan')):.4f}" for m in metric_names])
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dinno-experiment", description=__doc__)
    parser.add_argument("config", type=Path, help="experiment YAML")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default results/<name>)")
    parser.add_argument("--rounds", type=int, default=None, help="override the number of rounds")
    parser.add_argument("--seed", type=int, default=None,
                        help="override the seed (data split, initial weights, sampling; repeat a run on other seeds)")
    parser.add_argument("--algorithms", default=None,
                        help="comma-separated subset of the config's algorithms to run (default: all)")
    parser.add_argument("--wire-encoding", choices=WIRE_ENCODINGS, default=None,
                        help="override how payloads travel (float32, float16, 8-bit uint8)")
    parser.add_argument("--wire-delta", action="store_true", default=None,
                        help="send the change since an acknowledged round (with --wire-encoding float16/uint8)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="algorithms to run at once in worker processes (default 1: one after another)")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    try:
        overrides: dict[str, Any] = {} if args.rounds is None else {"rounds": args.rounds}
        if args.seed is not None:
            overrides["seed"] = args.seed
        if args.wire_encoding is not None:
            overrides["wire_encoding"] = args.wire_encoding
        if args.wire_delta:
            overrides["wire_delta"] = True
        config = load_experiment_config(args.config, overrides)
        if args.algorithms is not None:
            wanted = [name.strip() for name in args.algorithms.split(",") if name.strip()]
            unknown = [name for name in wanted if name not in config.algorithms]
            if unknown or not wanted:
                raise ConfigError(f"--algorithms: {', '.join(unknown) or '(none)'} not in the config; "
                                  f"allowed: {', '.join(config.algorithms)}")
            config = config.model_copy(update={"algorithms": {name: config.algorithms[name] for name in wanted}})
        if args.jobs < 1:
            raise ConfigError(f"--jobs must be >= 1, got {args.jobs}")
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    out_dir = args.out or Path("results") / config.name
    try:
        check_writable(out_dir, "--out")
        results = run_experiment(config, out_dir, console, jobs=args.jobs)
    except ConfigError as error:  # e.g. a task file that cannot be read: found before any result is written
        print(f"{args.config}: invalid configuration\n  {error}", file=sys.stderr)
        return 2
    Console().print(summary_table(results))
    console.print(f"results written to {out_dir / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
