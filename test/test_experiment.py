"""dinno-experiment: config validation before anything runs, and a small end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from dinno_core.config import ConfigError, ExperimentConfig, load_experiment_config, validate
from dinno_core.experiment import initial_weights, main

CONFIG_DIR = Path(__file__).resolve().parents[1] / "src" / "dinno_core" / "dinno_core" / "configs"

SMALL = {
    "name": "digits_small",
    "seed": 3,
    "rounds": 12,
    "eval_every": 4,
    "task": {"name": "mnist", "source": "digits", "split": "by_class"},
    "graph": {"kind": "cycle", "num_robots": 10},
    "algorithms": {
        "dinno": {"kind": "dinno", "primal_steps": 2, "batch_size": 16},
        "dsgt": {"kind": "dsgt", "batch_size": 16},
        "centralized": {"kind": "centralized", "batch_size": 32},
    },
}


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"algorithms": {"dinno": {"kind": "dinno", "rho_scaling": 0.5}}}, "algorithms.dinno.rho_scaling: Input should be greater than or equal to 1"),
        ({"algorithms": {"dinno": {"kind": "dinno", "optimizer": {"name": "lbfgs"}}}}, "'adam', 'adamw', 'sgd' or 'rmsprop'"),
        ({"algorithms": {"x": {"kind": "admm"}}}, "'dinno', 'dsgd', 'dsgt', 'individual', 'centralized'"),
        ({"task": {"name": "cifar"}}, "allowed: linear_regression, mnist, mapping"),
        ({"task": {"name": "mnist", "split": "random"}}, "'by_class' or 'iid'"),
        ({"graph": {"kind": "erdos_renyi", "num_robots": 5}}, "edge_probability"),
        ({"rounds": 0}, "rounds"),
        ({"learning_rate": 1}, "learning_rate"),
    ],
)
def test_a_bad_config_names_the_field_and_the_allowed_values(tmp_path, capsys, change, expected):
    out = tmp_path / "out"
    assert main([str(write(tmp_path, {**SMALL, **change})), "--out", str(out)]) == 2
    assert expected in capsys.readouterr().err
    assert not out.exists(), "nothing may start before the config is valid"


def test_shipped_configs_validate():
    names = sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))
    assert {"mnist_cycle.yaml", "mnist_complete.yaml", "convex_cycle.yaml"} <= set(names)
    for path in CONFIG_DIR.glob("*.yaml"):
        load_experiment_config(path)


def test_every_algorithm_starts_from_the_same_weights():
    config = validate(ExperimentConfig, SMALL, "test")
    _, _, first = initial_weights(config, torch.float32)
    _, _, second = initial_weights(config, torch.float32)
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_experiment_config(tmp_path / "absent.yaml")


def test_small_run_writes_results_and_plots(tmp_path):
    out = tmp_path / "out"
    assert main([str(write(tmp_path, SMALL)), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["task"]["name"] == "mnist"
    assert results["graph"]["algebraic_connectivity"] == pytest.approx(2 - 2 * torch.cos(torch.tensor(2 * torch.pi / 10)).item())
    assert set(results["algorithms"]) == {"dinno", "dsgt", "centralized"}
    for name, algorithm in results["algorithms"].items():
        curves, final = algorithm["curves"], algorithm["final"]
        assert curves["round"] == [4, 8, 12], name
        for metric in ("validation_loss", "accuracy", "consensus_error", "training_loss"):
            assert len(curves[metric]) == 3, (name, metric)
        assert 0.0 <= final["accuracy"] <= 1.0
        robots = 1 if name == "centralized" else 10
        assert len(final["accuracy_per_robot"]) == robots
    assert results["algorithms"]["centralized"]["final"]["consensus_error"] == 0.0
    assert results["algorithms"]["dinno"]["final"]["consensus_error"] > 0.0
    for metric in ("validation_loss", "accuracy", "consensus_error"):
        assert (out / f"{metric}.png").stat().st_size > 1000


def test_algorithms_option_runs_a_subset_and_rejects_unknown_names(tmp_path, capsys):
    config = write(tmp_path, {**SMALL, "rounds": 2, "eval_every": 2})
    out = tmp_path / "subset"
    assert main([str(config), "--out", str(out), "--algorithms", "centralized"]) == 0
    assert set(json.loads((out / "results.json").read_text())["algorithms"]) == {"centralized"}
    assert main([str(config), "--out", str(tmp_path / "bad"), "--algorithms", "dinno,admm"]) == 2
    assert "admm not in the config; allowed: centralized, dinno, dsgt" in capsys.readouterr().err


def test_seed_option_repeats_the_run_on_another_seed_and_rejects_a_negative_one(tmp_path, capsys):
    config = write(tmp_path, {**SMALL, "rounds": 2, "eval_every": 2})
    runs = {}
    for seed in ("3", "4"):
        out = tmp_path / f"seed{seed}"
        assert main([str(config), "--out", str(out), "--algorithms", "dinno", "--seed", seed]) == 0
        runs[seed] = json.loads((out / "results.json").read_text())
    assert runs["3"]["config"]["seed"] == 3 and runs["4"]["config"]["seed"] == 4
    assert runs["3"]["algorithms"]["dinno"]["final"] != runs["4"]["algorithms"]["dinno"]["final"]
    out = tmp_path / "negative"
    assert main([str(config), "--out", str(out), "--seed", "-1"]) == 2
    assert "seed" in capsys.readouterr().err
    assert not out.exists()


def test_jobs_runs_algorithms_in_worker_processes_with_the_same_results(tmp_path, restore_torch_threads):
    config = write(tmp_path, {**SMALL, "rounds": 6, "eval_every": 3, "torch_threads": 1})
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    assert main([str(config), "--out", str(serial)]) == 0
    assert main([str(config), "--out", str(parallel), "--jobs", "2"]) == 0
    one, two = (json.loads((out / "results.json").read_text()) for out in (serial, parallel))
    assert list(two["algorithms"]) == list(one["algorithms"]) and two["jobs"] == 2
    for name in SMALL["algorithms"]:
        assert two["algorithms"][name]["curves"] == one["algorithms"][name]["curves"], name
        assert two["algorithms"][name]["final"] == one["algorithms"][name]["final"], name
    weights_one, weights_two = (torch.load(out / "weights.pt") for out in (serial, parallel))
    for name in SMALL["algorithms"]:
        torch.testing.assert_close(weights_two[name], weights_one[name], rtol=0, atol=0)
    assert (parallel / "validation_loss.png").stat().st_size > 1000
    assert main([str(config), "--out", str(tmp_path / "bad"), "--jobs", "0"]) == 2
