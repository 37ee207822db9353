"""Delta encoding (dinno_core.wire_encoder): a change since an acknowledged round, decoded into
bit-identical values at both ends, within the encoding's error of the change and without drift;
never a reference some receiver does not hold; the simulated team sends exactly that."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dinno_core.algorithms.dual_ledger import Acknowledgements
from dinno_core.config import ConfigError, ExperimentConfig, validate
from dinno_core.quantization import uint8_error_bound, wire_roundtrip
from dinno_core.wire_encoder import (
    ACK_DELAY,
    DELTA_HISTORY,
    FULL,
    KEY_FRAME_EVERY,
    ReferenceStore,
    WireEncoder,
    acknowledged,
    apply_change,
)

sys.path.insert(0, str(Path(__file__).parent))
from test_algorithms import NUM_ROBOTS, convex_team  # noqa: E402


def all_acknowledged(encoder: WireEncoder, robots: int) -> torch.Tensor:
    return torch.ones(robots, len(encoder.rounds), dtype=torch.bool)


def test_a_change_is_decoded_into_the_same_bits_within_its_own_error_and_does_not_drift():
    """A random walk of small steps (training settling): every message after the first is a change
    since the round two before; what a receiver rebuilds from the payload equals what the sender
    says was sent, bit for bit, and is within half an 8-bit step of the CHANGE's range, far finer
    than a whole-weights message; the error does not grow over 200 rounds."""
    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(2, 1, 3000, generator=generator)
    encoder, receiver = WireEncoder("uint8", delta=True), ReferenceStore()
    errors = []
    for k in range(200):
        weights = weights + 1e-3 * torch.randn(weights.shape, generator=generator)
        message = encoder.encode(weights, k, all_acknowledged(encoder, 2))
        base = message.base_round.tolist()
        key_frame = k < ACK_DELAY or k % KEY_FRAME_EVERY == 0
        assert base == ([FULL, FULL] if key_frame else [k - ACK_DELAY] * 2)
        for robot in range(2):
            payload = wire_roundtrip(message.values[robot], "uint8").numpy()  # what the codec delivers
            rebuilt = payload if base[robot] == FULL else apply_change(receiver.get(f"r{robot}", base[robot]), payload)
            assert np.array_equal(rebuilt, message.sent[robot].numpy())
            receiver.store(f"r{robot}", k, rebuilt)
        bound = uint8_error_bound(message.values.reshape(2, -1)).reshape(message.values.shape)
        assert bool(((message.sent - weights).abs() <= bound + 1e-6).all())  # within the payload's own error
        errors.append(np.nan if key_frame else float((message.sent - weights).abs().max()))
    whole = float((wire_roundtrip(weights, "uint8") - weights).abs().max())
    assert np.nanmax(errors[-50:]) < whole / 20  # the changes: > 20x finer than whole weights
    assert np.nanmax(errors[-50:]) < 2 * np.nanmax(errors[:50])  # no drift
    assert (encoder.messages, encoder.key_frames) == (400, 2 * (ACK_DELAY + 199 // KEY_FRAME_EVERY))
    plain = WireEncoder("uint8")
    plain.encode(weights, 0)
    assert encoder.relative_error_sum / encoder.messages < plain.relative_error_sum / plain.messages / 10


def test_a_change_only_refers_to_a_round_every_receiver_acknowledged():
    encoder = WireEncoder("uint8", delta=True)
    weights = torch.zeros(2, 1, 10)
    for k in range(4):
        encoder.encode(weights + k, k, None)  # no acknowledgements yet: key frames
    assert encoder.rounds.tolist() == [0, 1, 2, 3]
    # Robot 0's two receivers both used its rounds 2 and 1; robot 1's second receiver used none.
    acks = Acknowledgements(round=torch.tensor([[3, 3], [3, 3]]), bits=torch.tensor([[0b110, 0b010], [0b110, 0]]),
                            span=torch.tensor([[4, 4], [4, 4]]))
    receivers = torch.tensor([[True, True], [True, True]])
    acked = acknowledged(acks, receivers, encoder.rounds)
    assert acked.tolist() == [[False, False, True, False], [False, False, False, False]]
    message = encoder.encode(weights + 4, 4, acked)
    assert message.base_round.tolist() == [2, FULL]
    # A receiver that will not get the message does not count; a robot with no receivers sends a key frame.
    acked = acknowledged(acks, torch.tensor([[True, True], [True, False]]), encoder.rounds)
    assert acked[1].tolist() == [False, True, True, False, False]  # rounds 1 and 2; round 4 is new
    assert not acknowledged(acks, torch.zeros(2, 2, dtype=torch.bool), encoder.rounds).any()
    # Bits beyond the span say nothing; rounds too old for the receivers' stores are not used.
    assert not acknowledged(Acknowledgements(round=acks.round, bits=acks.bits, span=torch.ones(2, 2, dtype=torch.long)),
                            receivers, encoder.rounds).any()
    late = encoder.encode(weights, 4 + DELTA_HISTORY + 1, torch.ones(2, len(encoder.rounds), dtype=torch.bool))
    assert late.base_round.tolist() == [FULL, FULL]


def test_a_receiver_keeps_each_senders_recent_rounds_and_forgets_a_restarted_one():
    store = ReferenceStore(keep=3)
    for k in range(6):
        store.store("b", k, np.full((1, 2), k, np.float32))
    assert [k for k in range(6) if store.get("b", k) is not None] == [3, 4, 5]
    store.forget("b")
    assert store.get("b", 5) is None


def test_delta_needs_a_lossy_encoding():
    with pytest.raises(ValueError, match="float16 or uint8"):
        WireEncoder("float32", delta=True)
    data = {"rounds": 1, "wire_encoding": "float32", "wire_delta": True, "task": {"name": "linear_regression"},
            "graph": {"kind": "cycle", "num_robots": 3}, "algorithms": {"dinno": {"kind": "dinno"}}}
    with pytest.raises(ConfigError, match="wire_delta.*float16 or uint8"):
        validate(ExperimentConfig, data, "delta.yaml")
    assert validate(ExperimentConfig, {**data, "wire_encoding": "uint8"}, "delta.yaml").wire_delta


def test_the_simulated_team_with_8_bit_changes_tracks_float32_far_closer_than_8_bit_weights():
    """DiNNO on the convex cycle: after 300 rounds the 8-bit team that sends changes is >= 10x
    closer to the float32 team than the one that sends 8-bit weights, at the same bytes."""
    from dinno_core.algorithms import DinnoConfig, OptimizerConfig

    config = DinnoConfig(rho_init=0.5, primal_steps=5, batch_size=0, optimizer=OptimizerConfig(name="sgd"))
    final = {}
    for name, wire in {"float32": WireEncoder(), "uint8": WireEncoder("uint8"),
                       "uint8_delta": WireEncoder("uint8", delta=True)}.items():
        _, team = convex_team(config)
        team.wire = wire
        for _ in range(300):
            team.run_round()
        final[name] = team.algorithm.theta.clone()
        assert wire.messages == 300 * NUM_ROBOTS
        key_frames = (ACK_DELAY + 299 // KEY_FRAME_EVERY) * NUM_ROBOTS  # the first two and every 20th
        assert wire.key_frames == (key_frames if wire.delta else wire.messages)
        dual = team.algorithm.dual
        assert float(dual.sum(dim=0).norm()) <= 1e-12 * float(dual.norm(dim=1).max())  # exact duals either way
    plain = float((final["uint8"] - final["float32"]).norm())
    delta = float((final["uint8_delta"] - final["float32"]).norm())
    assert delta * 10 < plain, (delta, plain)


def test_a_resumed_simulated_team_keeps_its_references():
    from dinno_core.algorithms import DinnoConfig, OptimizerConfig

    config = DinnoConfig(rho_init=0.5, primal_steps=2, batch_size=0, optimizer=OptimizerConfig(name="sgd"))
    _, straight = convex_team(config)
    straight.wire = WireEncoder("uint8", delta=True)
    _, first = convex_team(config)
    first.wire = WireEncoder("uint8", delta=True)
    for _ in range(10):
        straight.run_round()
        first.run_round()
    saved = {"team": first.state_dict(), "algorithm": first.algorithm.state_dict()}
    _, resumed = convex_team(config)
    resumed.wire = WireEncoder("uint8", delta=True)
    resumed.load_state_dict(saved["team"])
    resumed.algorithm.load_state_dict(saved["algorithm"])
    for _ in range(10):
        straight.run_round()
        resumed.run_round()
    assert torch.equal(straight.algorithm.theta, resumed.algorithm.theta)
