"""The scaling study: rounds to a target accuracy per team size, from plain experiment runs."""

from __future__ import annotations

import json

import pytest
import yaml

from dinno_core.scaling_study import main, rounds_to_target


def test_rounds_to_target_is_the_first_evaluation_at_or_above_it():
    curves = {"round": [10, 20, 30, 40], "accuracy": [0.5, 0.9, 0.89, 0.95]}
    assert rounds_to_target(curves, 0.9) == 20
    assert rounds_to_target(curves, 0.95) == 40
    assert rounds_to_target(curves, 0.96) is None


def test_a_small_study_runs_each_size_and_writes_table_and_plot(tmp_path, restore_torch_threads):
    config = {
        "name": "tiny_scaling", "seed": 0, "rounds": 4, "eval_every": 2, "torch_threads": 1,
        "task": {"name": "mnist", "source": "digits", "max_train_per_class": 8, "max_test": 40},
        "graph": {"kind": "geometric", "num_robots": 10, "target_connectivity": 1.0},
        "algorithms": {
            "dinno": {"kind": "dinno", "primal_steps": 1, "batch_size": 8},
            "centralized": {"kind": "centralized", "steps_per_round": 1, "batch_size": 8},
        },
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "study"
    assert main(["--config", str(path), "--robots", "3", "4", "--out", str(out)]) == 0
    study = json.loads((out / "scaling.json").read_text())
    assert set(study["rounds_to_target"]["dinno"]) == {"3", "4"}
    assert study["target"] == pytest.approx(study["centralized_accuracy"] - 0.01)
    assert all(abs(g["algebraic_connectivity"] - 1.0) <= 0.05 for g in study["graphs"].values())
    assert (out / "rounds_to_target.png").stat().st_size > 0
    assert (out / "n4" / "results.json").is_file() and (out / "centralized" / "results.json").is_file()
    # Run again with one more size: the finished sizes are reused, not run again; only N=5 runs.
    finished = {p: p.stat().st_mtime_ns for p in out.glob("*/results.json")}
    assert main(["--config", str(path), "--robots", "3", "4", "5", "--out", str(out)]) == 0
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())
    again = json.loads((out / "scaling.json").read_text())
    assert set(again["rounds_to_target"]["dinno"]) == {"3", "4", "5"} and (out / "n5" / "results.json").is_file()
    assert {n: again["rounds_to_target"]["dinno"][n] for n in ("3", "4")} == study["rounds_to_target"]["dinno"]
    # A changed config is run again.
    config["rounds"] = 6
    path.write_text(yaml.safe_dump(config))
    assert main(["--config", str(path), "--robots", "3", "--out", str(out)]) == 0
    assert (out / "n3" / "results.json").stat().st_mtime_ns != finished[out / "n3" / "results.json"]


def test_a_size_the_graph_cannot_have_is_a_clear_error_before_anything_runs(tmp_path, capsys):
    assert main(["--robots", "1", "--out", str(tmp_path / "never")]) == 2
    assert "at least 2" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()
