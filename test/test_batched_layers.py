"""The batched formulation of Sequential models (grouped convolutions, batched matrix products)
gives each robot the numbers ``vmap`` gives it, and the whole team the numbers its robots get
stepped one at a time; the team's pooled minibatch draw equals each robot's own."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dinno_core.algorithms import DinnoConfig, Inbox, LearningRateSchedule, build_algorithm
from dinno_core.batched_layers import BatchedSequential
from dinno_core.graphs import StaticGraph, cycle_graph
from dinno_core.params import FlatModel
from dinno_core.tasks.base import TensorData
from dinno_core.tasks.mnist import MnistTaskConfig, build_mnist_cnn, build_task
from dinno_core.team import SimulatedTeam, TeamData, gather_inbox, robot_generator


@pytest.fixture(autouse=True)
def single_thread(restore_torch_threads):
    torch.set_num_threads(1)


def strided_cnn() -> nn.Sequential:
    """Two convolutions (stride, padding, dilation, no bias), both poolings, three activations."""
    return nn.Sequential(
        nn.Conv2d(2, 4, kernel_size=3, stride=2, padding=1, bias=False), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(4, 3, kernel_size=2, dilation=2, padding=2), nn.GELU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(27, 8), nn.SiLU(), nn.Linear(8, 5, bias=False),
    )


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 16), nn.Sigmoid(), nn.Linear(16, 4))


CASES = {
    "mnist_cnn": (build_mnist_cnn, (1, 28, 28), 10),
    "strided_cnn": (strided_cnn, (2, 21, 21), 5),
    "mlp": (mlp, (3,), 4),
}


@pytest.mark.parametrize("case", CASES)
def test_batched_sequential_equals_vmap(case):
    build, input_shape, classes = CASES[case]
    torch.manual_seed(0)
    model = build().double()
    batched, vmapped = FlatModel(model, F.cross_entropy), FlatModel(model, F.cross_entropy, formulation="vmap")
    assert batched.formulation == "batched_sequential" and vmapped.formulation == "vmap"
    robots, batch = 4, 6
    theta = batched.initial_weights().repeat(robots, 1) + 0.05 * torch.randn(robots, batched.spec.numel, dtype=torch.float64)
    inputs = torch.randn(robots, batch, *input_shape)
    targets = torch.randint(classes, (robots, batch))
    losses, grads = batched.loss_and_grad(theta, inputs, targets)
    expected_losses, expected_grads = vmapped.loss_and_grad(theta, inputs, targets)
    torch.testing.assert_close(losses, expected_losses, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads, expected_grads, rtol=1e-10, atol=1e-12)
    shared = torch.randn(7, *input_shape)
    torch.testing.assert_close(batched.forward(theta, shared), vmapped.forward(theta, shared), rtol=1e-12, atol=1e-12)
    # Robots are independent: changing one robot's weights changes only its own results.
    theta[2] += 0.1
    moved_losses, moved_grads = batched.loss_and_grad(theta, inputs, targets)
    assert torch.equal(moved_losses[[0, 1, 3]], losses[[0, 1, 3]]) and moved_losses[2] != losses[2]
    assert torch.equal(moved_grads[[0, 1, 3]], grads[[0, 1, 3]])


def test_unsupported_models_fall_back_to_vmap():
    assert not BatchedSequential.supports(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)))
    assert not BatchedSequential.supports(nn.Sequential(nn.Flatten(), nn.Conv2d(1, 1, 3)))  # conv after dense
    assert not BatchedSequential.supports(nn.Sequential(nn.Conv2d(2, 2, 3, groups=2)))
    assert not BatchedSequential.supports(nn.Linear(3, 1))  # not a Sequential
    flat = FlatModel(nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.0)), F.cross_entropy)
    assert flat.formulation == "vmap"
    with pytest.raises(ValueError, match="formulation"):
        FlatModel(mlp(), F.cross_entropy, formulation="grouped")


def test_mnist_team_equals_robots_stepped_one_at_a_time_with_vmap():
    """The 5-robot CNN team (batched formulation, pooled sampling) against R=1 robots using vmap."""
    num_robots, seed = 5, 2
    task = build_task(MnistTaskConfig(source="digits"), num_robots, seed)
    config = DinnoConfig(rho_init=0.5, rho_scaling=1.01, primal_steps=2, batch_size=16,
                         lr=LearningRateSchedule(kind="constant", start=3e-3))
    torch.manual_seed(seed)
    team_model = FlatModel(task.build_model().double(), task.loss)
    robot_model = FlatModel(team_model.model, task.loss, formulation="vmap")
    theta0 = team_model.initial_weights().repeat(num_robots, 1)
    graph = cycle_graph(num_robots)
    team = SimulatedTeam(build_algorithm(config, team_model, theta0), StaticGraph(graph),
                         TeamData(task.robot_data(num_robots), seed))
    singles = [(build_algorithm(config, robot_model, theta0[i:i + 1]), TeamData([data], seed, [i]))
               for i, data in enumerate(task.robot_data(num_robots))]
    for _ in range(3):
        outgoing = torch.cat([robot.outgoing() for robot, _ in singles])
        inbox = gather_inbox(outgoing, graph)
        for i, (robot, data) in enumerate(singles):
            robot.step(Inbox(inbox.payloads[i:i + 1], inbox.mask[i:i + 1], inbox.sender_degrees[i:i + 1]), data.sample)
        team.run_round()
    one_at_a_time = torch.cat([robot.theta for robot, _ in singles])
    torch.testing.assert_close(team.algorithm.theta, one_at_a_time, rtol=1e-9, atol=1e-11)
    assert not torch.equal(team.algorithm.theta, theta0)


def test_pooled_team_sampling_equals_each_robots_own_draw():
    sizes = [5, 9, 1, 7]
    datasets = [TensorData(torch.randn(n, 2, 3), torch.randint(4, (n,))) for n in sizes]
    copies = [TensorData(d.inputs.clone(), d.targets.clone()) for d in datasets]
    team = TeamData(datasets, seed=4)
    generators = [robot_generator(4, i) for i in range(len(sizes))]
    for _ in range(3):
        inputs, targets = team.sample(6)
        assert inputs.shape == (4, 6, 2, 3) and targets.shape == (4, 6)
        for robot, (data, generator) in enumerate(zip(copies, generators)):
            expected_inputs, expected_targets = data.sample(6, generator)
            assert torch.equal(inputs[robot], expected_inputs) and torch.equal(targets[robot], expected_targets)
    for data, copy in zip(datasets, copies):  # each robot's dataset now views the pool, same values
        assert torch.equal(data.inputs, copy.inputs) and torch.equal(data.targets, copy.targets)
