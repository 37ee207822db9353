"""Checkpoints never lose work: every damaged file is one clear error naming it, reading never
changes it, and a run never overwrites a checkpoint it did not resume from."""

from __future__ import annotations

import hashlib
import io
import struct
import subprocess
import sys

import pytest
import torch

from dinno_core.algorithms import DinnoConfig, LearningRateSchedule, OptimizerConfig
from dinno_core.checkpoint import (
    CheckpointError,
    claim_checkpoint_path,
    load_checkpoint,
    restore,
    save_checkpoint,
)
from dinno_core.config import ConfigError
from dinno_core.tasks.convex import ConvexTaskConfig
from dinno_ros.trainer import RobotSettings, RobotTrainer

TEAM = ("r0", "r1")
CONFIG = DinnoConfig(rho_init=0.5, primal_steps=2, batch_size=2, optimizer=OptimizerConfig(name="adam"),
                     lr=LearningRateSchedule(start=0.01))


def settings(tmp_path, resume: bool, robot: str = "r0") -> RobotSettings:
    return RobotSettings(robot_id=robot, team=TEAM, algorithm=CONFIG, task=ConvexTaskConfig(), seed=1,
                         neighbours=tuple(r for r in TEAM if r != robot), rounds=1,
                         checkpoint_path=str(tmp_path / "r0.pt"), resume=resume)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def saved(tmp_path):
    """A real robot checkpoint at round 40, and its bytes' digest."""
    trainer = RobotTrainer(settings(tmp_path, resume=False))
    trainer.algorithm.round = 40
    trainer.save_checkpoint()
    path = tmp_path / "r0.pt"
    return path, trainer.checkpoint_state()


def rewrite(path, state):
    path.unlink()
    save_checkpoint(path, state)


def test_a_checkpoint_round_trips(saved, tmp_path):
    path, _ = saved
    state = load_checkpoint(path, required=("algorithm.theta",))
    assert state["round"] == 40 and state["algorithm"]["round"] == 40
    trainer = RobotTrainer(settings(tmp_path, resume=True))
    assert trainer.resumed_from == 40


def damage_truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def damage_random(path):
    path.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0),
                                   dtype=torch.uint8).numpy().tobytes())


def damage_empty(path):
    path.write_bytes(b"")


def damage_directory(path):
    path.unlink()
    path.mkdir()


def damage_flipped(path):
    data = bytearray(path.read_bytes())
    for offset in (200, 900, 1500, len(data) - 7):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def damage_old_format(path):
    path.unlink()
    torch.save({"theta": torch.zeros(3)}, path)


DAMAGE = {
    "truncated": (damage_truncated, "is truncated"),
    "random bytes": (damage_random, "is not a DiNNO checkpoint"),
    "empty": (damage_empty, r"is empty \(0 bytes\)"),
    "directory": (damage_directory, "is a directory"),
    "four flipped bytes": (damage_flipped, "checksum"),
    "plain torch.save": (damage_old_format, "is not a DiNNO checkpoint"),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_checkpoint_is_one_clear_error_and_stays_as_it_was(saved, tmp_path, case):
    path, _ = saved
    damage, message = DAMAGE[case]
    damage(path)
    before = None if path.is_dir() else digest(path)
    with pytest.raises(CheckpointError, match=message) as raised:
        RobotTrainer(settings(tmp_path, resume=True))
    assert str(path) in str(raised.value) and isinstance(raised.value, ConfigError)
    assert (path.is_dir() if before is None else digest(path) == before)
    assert [p.name for p in tmp_path.iterdir()] == ["r0.pt"]  # nothing written beside it


def edit_missing_key(state):
    del state["algorithm"]["dual"]


def edit_missing_theta(state):
    del state["algorithm"]["theta"]


def edit_wrong_shape(state):
    state["algorithm"]["theta"] = torch.zeros(1, 3)


def edit_other_robot(state):
    state["robot_id"] = "r1"


CONTENT = {
    "missing dual": (edit_missing_key, "lacks the entry 'dual'"),
    "missing theta": (edit_missing_theta, "lacks the entry 'algorithm.theta'"),
    "wrong shape": (edit_wrong_shape, "does not fit this model/algorithm: checkpoint theta has shape"),
    "another robot": (edit_other_robot, "does not belong to this robot"),
}


@pytest.mark.parametrize("case", CONTENT)
def test_a_checkpoint_that_does_not_fit_is_one_clear_error_and_stays_as_it_was(saved, tmp_path, case):
    path, state = saved
    edit, message = CONTENT[case]
    edit(state)
    rewrite(path, state)
    before = digest(path)
    with pytest.raises(CheckpointError, match=message) as raised:
        RobotTrainer(settings(tmp_path, resume=True))
    assert str(path) in str(raised.value)
    assert digest(path) == before


@pytest.mark.parametrize("value, message", [(float("nan"), "NaN/Inf values in algorithm.theta"),
                                            (float("inf"), "NaN/Inf values in algorithm.theta")])
def test_non_finite_weights_are_neither_saved_nor_resumed(saved, tmp_path, value, message):
    path, state = saved
    before = digest(path)
    state["algorithm"]["theta"][0, 0] = value
    with pytest.raises(CheckpointError, match="not saved"):
        save_checkpoint(path, state)
    assert digest(path) == before  # the refused save left the good checkpoint
    # A valid file (right checksum) written by something else with NaN inside: refused on resume, kept.
    forge(path, state)
    before = digest(path)
    with pytest.raises(CheckpointError, match=message):
        RobotTrainer(settings(tmp_path, resume=True))
    assert digest(path) == before


def forge(path, state):
    """Write ``state`` in the checkpoint format without save_checkpoint's checks."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    path.write_bytes(struct.pack("<8sIQ32s", b"DINNOCKP", 2, len(payload), hashlib.sha256(payload).digest()) + payload)


def test_a_negative_round_is_refused(saved, tmp_path):
    path, state = saved
    before = digest(path)
    state["algorithm"]["round"] = -5
    with pytest.raises(CheckpointError, match="negative round"):
        save_checkpoint(path, state)
    assert digest(path) == before
    forge(path, state)
    before = digest(path)
    with pytest.raises(CheckpointError, match=r"negative round \(algorithm.round = -5\)"):
        RobotTrainer(settings(tmp_path, resume=True))
    assert digest(path) == before


def test_restore_names_the_file_for_what_a_load_raises(tmp_path):
    def load():
        raise RuntimeError("size mismatch")
    with pytest.raises(CheckpointError, match=f"checkpoint {tmp_path}/x.pt: does not fit .*size mismatch"):
        restore(tmp_path / "x.pt", load)


def test_starting_without_resume_keeps_an_existing_checkpoint_aside(saved, tmp_path):
    path, _ = saved
    before = digest(path)
    trainer = RobotTrainer(settings(tmp_path, resume=False))
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("r0.kept-")]
    assert len(kept) == 1 and digest(kept[0]) == before and not path.exists()
    assert load_checkpoint(kept[0])["round"] == 40
    trainer.save_checkpoint()  # round 0 goes to the now free path; round 40 is still there
    assert load_checkpoint(path)["round"] == 0 and digest(kept[0]) == before
    # Resuming from a checkpoint may overwrite it (that is the point of resuming).
    resumed = RobotTrainer(settings(tmp_path, resume=True))
    resumed.save_checkpoint()
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("r0.kept-")]) == 1


def test_claiming_a_free_path_or_the_resumed_one_moves_nothing(tmp_path):
    assert claim_checkpoint_path(tmp_path / "none.pt", resuming=False) is None
    save_checkpoint(tmp_path / "a.pt", {"round": 1})
    assert claim_checkpoint_path(tmp_path / "a.pt", resuming=True) is None
    assert (tmp_path / "a.pt").exists()
    first = claim_checkpoint_path(tmp_path / "a.pt", resuming=False)
    save_checkpoint(tmp_path / "a.pt", {"round": 2})
    second = claim_checkpoint_path(tmp_path / "a.pt", resuming=False)
    assert first != second and first.exists() and second.exists()


def test_the_robot_node_reports_a_damaged_checkpoint_in_one_screen(saved, tmp_path):
    """The real node: exit status 2, one message naming the file, no traceback, file untouched."""
    path, _ = saved
    damage_truncated(path)
    before = digest(path)
    command = [sys.executable, "-m", "dinno_ros.robot_node", "--ros-args", "-p", "robot_id:=r0",
               "-p", "team:=[r0, r1]", "-p", "neighbours:=[r1]", "-p", f"checkpoint_path:={path}",
               "-p", "resume:=true"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"checkpoint {path}: is truncated" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) < 10
    assert digest(path) == before
