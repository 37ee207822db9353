"""DiNNO under one-sided message loss: acknowledged edge duals keep the loss-free optimum.

The simulated team loses every message independently on each direction of each edge
(``graph.drop_probability``); the paper's per-robot dual drifts there, the reconciled one does not.
"""

from __future__ import annotations

import pytest
import torch

from dinno_core.algorithms import DinnoConfig, LearningRateSchedule, OptimizerConfig, build_algorithm
from dinno_core.algorithms.dual_ledger import Acknowledgements, DualLedger, dual_imbalance, dual_probe
from dinno_core.graphs import EdgeDropout, StaticGraph, cycle_graph
from dinno_core.params import FlatModel
from dinno_core.tasks.convex import ConvexTaskConfig, LinearRegressionTask
from dinno_core.team import SimulatedTeam, TeamData

NUM_ROBOTS = 10


def lossy_team(drop: float, window: int, seed: int = 0, rounds_seed: int = 1):
    torch.manual_seed(seed)
    task = LinearRegressionTask(ConvexTaskConfig(), NUM_ROBOTS, seed)
    flat = FlatModel(task.build_model().double(), task.loss)
    config = DinnoConfig(rho_init=1.0, primal_steps=20, batch_size=0, optimizer=OptimizerConfig(name="sgd"),
                         lr=LearningRateSchedule(start=0.05), reconcile_window=window)
    algorithm = build_algorithm(config, flat, flat.initial_weights().repeat(NUM_ROBOTS, 1))
    graph = EdgeDropout(StaticGraph(cycle_graph(NUM_ROBOTS)), drop, rounds_seed)
    return task, SimulatedTeam(algorithm, graph, TeamData(task.robot_data(NUM_ROBOTS), seed))


def relative_error(theta: torch.Tensor, optimum: torch.Tensor) -> float:
    return float((theta - optimum).norm(dim=1).max() / optimum.norm())


@pytest.mark.parametrize("drop", [0.1, 0.3])
def test_one_sided_loss_moves_the_paper_dual_and_not_the_reconciled_one(drop):
    task, paper = lossy_team(drop, window=0)
    _, reconciled = lossy_team(drop, window=16)
    for _ in range(300):
        paper.run_round()
        reconciled.run_round()
    optimum = task.optimum()
    # The paper's per-robot dual: the robots agree, on the wrong point, and the duals no longer cancel.
    assert relative_error(paper.algorithm.theta, optimum) > 1e-2
    assert dual_imbalance(paper.algorithm.dual) > 0.1
    # Acknowledged edge duals: the loss-free optimum, duals cancelling.
    assert relative_error(reconciled.algorithm.theta, optimum) < 1e-5  # 300 rounds: 1e-11 at 10 %, 2e-6 at 30 %
    assert dual_imbalance(reconciled.algorithm.dual) < 1e-5
    counts = {name: int(value.sum()) for name, value in reconciled.algorithm.ledger.counts.items()}
    assert counts["reverted"] > 0 and counts["confirmed"] > counts["reverted"]
    # The scalar a robot node publishes: its team sum is the imbalance along one direction.
    key = 0x1234
    assert abs(float(dual_probe(paper.algorithm.dual, key).sum())) > 1e-3
    assert abs(float(dual_probe(reconciled.algorithm.dual, key).sum())) < 1e-5


def test_without_loss_reconciliation_is_the_papers_algorithm():
    _, paper = lossy_team(0.0, window=0)
    _, reconciled = lossy_team(0.0, window=16)
    for _ in range(20):
        paper.run_round()
        reconciled.run_round()
    torch.testing.assert_close(reconciled.algorithm.theta, paper.algorithm.theta, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(reconciled.algorithm.dual, paper.algorithm.dual, rtol=1e-12, atol=1e-12)
    assert int(reconciled.algorithm.ledger.counts["reverted"].sum()) == 0
    assert int(reconciled.algorithm.ledger.counts["confirmed"].sum()) == 19 * 2 * NUM_ROBOTS


def test_a_lossy_team_resumes_exactly_with_its_pending_increments():
    _, team = lossy_team(0.3, window=16)
    for _ in range(7):
        team.run_round()
    assert team.algorithm.ledger.entries, "some increments are pending after a round"
    state = team.algorithm.state_dict()
    _, other = lossy_team(0.3, window=16)
    other.algorithm.load_state_dict(state)
    other.load_state_dict(team.state_dict())
    other.data.load_state_dict(team.data.state_dict())
    for _ in range(5):
        team.run_round()
        other.run_round()
    torch.testing.assert_close(other.algorithm.dual, team.algorithm.dual, rtol=0, atol=0)


def test_ledger_confirms_reverts_and_expires():
    dual = torch.zeros(1, 2, dtype=torch.float64)
    ledger = DualLedger(1, window=3)
    senders = torch.tensor([[4, 7]])
    delta = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]], dtype=torch.float64)
    dual += delta.sum(dim=1)
    ledger.record(5, senders, torch.tensor([[True, True]]), delta)
    # Robot 4's message of round 6 acknowledges rounds 5 and 4 (bits 0b10 relative to round 6: round 5 used).
    ledger.resolve(dual, torch.tensor([[4, 7]]), Acknowledgements(round=torch.tensor([[6, -1]]),
                                                                  bits=torch.tensor([[0b10, 0]]),
                                                                  span=torch.tensor([[32, 0]])))
    assert dual.tolist() == [[1.0, 2.0]] and int(ledger.counts["confirmed"][0]) == 1
    ledger.expire(dual, 7)  # not yet 3 rounds
    assert dual.tolist() == [[1.0, 2.0]]
    ledger.expire(dual, 8)  # robot 7 silent for 3 rounds: its increment goes
    assert dual.tolist() == [[1.0, 0.0]] and int(ledger.counts["expired"][0]) == 1
    assert not ledger.entries
    ledger.record(9, senders, torch.tensor([[True, False]]), delta)
    unknown = Acknowledgements(round=torch.tensor([[9, 9]]), bits=torch.tensor([[0, 1]]), span=torch.tensor([[0, 0]]))
    ledger.resolve(dual, senders, unknown)  # a restarted sender's bits say nothing yet
    assert dual.tolist() == [[1.0, 0.0]] and ledger.entries
    ledger.resolve(dual, senders, Acknowledgements(round=torch.tensor([[9, 9]]), bits=torch.tensor([[0, 1]]),
                                                   span=torch.tensor([[1, 1]])))
    assert dual.tolist() == [[0.0, 0.0]] and int(ledger.counts["reverted"][0]) == 1
    with pytest.raises(ValueError, match="window"):
        DualLedger(1, window=33)
