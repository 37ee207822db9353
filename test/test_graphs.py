"""Tests for dinno_core.graphs: builders, λ2, Metropolis weights, neighbour tables, time-varying graphs."""

import math

import networkx as nx
import numpy as np
import pytest
import torch
from pydantic import ValidationError

from dinno_core.graphs import (
    DiskGraph,
    EdgeDropout,
    GraphConfig,
    StaticGraph,
    algebraic_connectivity,
    build_graph,
    complete_graph,
    cycle_graph,
    describe,
    disk_graph,
    erdos_renyi_graph,
    geometric_graph,
    metropolis_weights,
    neighbour_table,
    path_graph,
    star_graph,
    wheel_graph,
)


def _is_simple_on_range(graph: nx.Graph, n: int) -> bool:
    return sorted(graph.nodes) == list(range(n)) and nx.number_of_selfloops(graph) == 0


@pytest.mark.parametrize("n", [1, 2, 3, 10])
def test_builders_edge_counts(n):
    expected = {
        complete_graph: n * (n - 1) // 2,
        cycle_graph: n if n >= 3 else n - 1,
        path_graph: n - 1,
        star_graph: n - 1,
        wheel_graph: 2 * (n - 1) if n >= 4 else n * (n - 1) // 2,
    }
    for builder, edges in expected.items():
        graph = builder(n)
        assert _is_simple_on_range(graph, n), builder.__name__
        assert graph.number_of_edges() == edges, builder.__name__


def test_builder_degrees():
    assert dict(star_graph(6).degree) == {0: 5, 1: 1, 2: 1, 3: 1, 4: 1, 5: 1}
    wheel = wheel_graph(7)
    assert wheel.degree[0] == 6 and all(wheel.degree[i] == 3 for i in range(1, 7))
    assert all(d == 2 for _, d in cycle_graph(8).degree)


@pytest.mark.parametrize("n", [3, 5, 10, 17])
def test_cycle_connectivity_is_analytic(n):
    assert algebraic_connectivity(cycle_graph(n)) == pytest.approx(2 - 2 * math.cos(2 * math.pi / n), abs=1e-9)


def test_known_connectivities():
    assert algebraic_connectivity(complete_graph(10)) == pytest.approx(10.0)
    assert algebraic_connectivity(path_graph(6)) == pytest.approx(2 - 2 * math.cos(math.pi / 6))
    assert algebraic_connectivity(star_graph(6)) == pytest.approx(1.0)
    disconnected = nx.disjoint_union(complete_graph(3), complete_graph(3))
    assert algebraic_connectivity(disconnected) == 0.0
    assert algebraic_connectivity(complete_graph(1)) == 0.0


def test_describe_reports_everything():
    info = describe(cycle_graph(10))
    assert info["num_nodes"] == 10 and info["num_edges"] == 10 and info["max_degree"] == 2
    assert info["connected"] is True
    assert info["algebraic_connectivity"] == pytest.approx(2 - 2 * math.cos(2 * math.pi / 10))


def test_erdos_renyi_connected_and_deterministic():
    for seed in range(5):
        graph = erdos_renyi_graph(10, 0.2, seed=seed)
        assert _is_simple_on_range(graph, 10) and nx.is_connected(graph)
        assert algebraic_connectivity(graph) > 0
    assert nx.utils.graphs_equal(erdos_renyi_graph(10, 0.3, 4), erdos_renyi_graph(10, 0.3, 4))
    with pytest.raises(RuntimeError, match="connected"):
        erdos_renyi_graph(30, 0.01, seed=0, max_tries=5)


@pytest.mark.parametrize(("n", "target"), [(10, 1.0), (10, 0.5), (30, 1.0), (50, 2.0)])
def test_geometric_hits_target_connectivity(n, target):
    graph = geometric_graph(n, target, seed=1, tolerance=0.05)
    assert _is_simple_on_range(graph, n) and nx.is_connected(graph)
    assert abs(algebraic_connectivity(graph) - target) <= 0.05
    radius = graph.graph["radius"]
    positions = np.array([graph.nodes[i]["pos"] for i in range(n)])
    assert nx.utils.edges_equal(disk_graph(positions, radius).edges, graph.edges)
    assert nx.utils.graphs_equal(graph, geometric_graph(n, target, seed=1, tolerance=0.05))


def test_geometric_rejects_impossible_target():
    with pytest.raises(ValueError, match="path"):
        geometric_graph(5, 0.1, seed=0)
    with pytest.raises(ValueError, match="target_connectivity"):
        geometric_graph(5, 6.0, seed=0)


def test_disk_graph_from_positions():
    positions = np.array([[0.0, 0.0], [1.0, 0.0], [2.5, 0.0], [10.0, 10.0]])
    graph = disk_graph(positions, radius=1.5)
    assert _is_simple_on_range(graph, 4)
    assert sorted(graph.edges) == [(0, 1), (1, 2)]
    assert graph.degree[3] == 0
    assert graph.nodes[2]["pos"] == (2.5, 0.0)


@pytest.mark.parametrize(
    "graph",
    [complete_graph(6), cycle_graph(7), star_graph(8), wheel_graph(9), erdos_renyi_graph(12, 0.3, 0),
     disk_graph(np.array([[0, 0], [1, 0], [5, 5]]), 1.5)],
)
def test_metropolis_weights_doubly_stochastic_symmetric(graph):
    weights = metropolis_weights(graph)
    n = graph.number_of_nodes()
    assert weights.shape == (n, n)
    np.testing.assert_allclose(weights, weights.T)
    np.testing.assert_allclose(weights.sum(axis=0), np.ones(n))
    np.testing.assert_allclose(weights.sum(axis=1), np.ones(n))
    assert (weights >= 0).all()
    adjacency = nx.to_numpy_array(graph, nodelist=range(n)) > 0
    off_diagonal = ~np.eye(n, dtype=bool)
    assert ((weights[off_diagonal] > 0) == adjacency[off_diagonal]).all()


def test_metropolis_weights_values():
    weights = metropolis_weights(star_graph(4))  # hub degree 3, leaves degree 1
    assert weights[0, 1] == pytest.approx(1 / 4)
    assert weights[1, 1] == pytest.approx(3 / 4)
    assert weights[0, 0] == pytest.approx(1 / 4)


def test_neighbour_table_contents():
    index, mask = neighbour_table(star_graph(4), 4)
    assert index.dtype == torch.long and mask.dtype == torch.bool
    assert index.tolist() == [[1, 2, 3], [0, 1, 1], [0, 2, 2], [0, 3, 3]]
    assert mask.tolist() == [[True] * 3, [True, False, False], [True, False, False], [True, False, False]]


def test_neighbour_table_isolated_and_edgeless():
    graph = disk_graph(np.array([[0, 0], [1, 0], [9, 9]]), 1.5)
    index, mask = neighbour_table(graph, 3)
    assert index.tolist() == [[1], [0], [2]] and mask.tolist() == [[True], [True], [False]]
    empty = nx.empty_graph(3)
    index, mask = neighbour_table(empty, 3)
    assert index.shape == (3, 1) and not mask.any() and index[:, 0].tolist() == [0, 1, 2]


def test_neighbour_table_gathers_payloads():
    graph = cycle_graph(5)
    index, mask = neighbour_table(graph, 5)
    payload = torch.arange(5.0).unsqueeze(1) * torch.ones(5, 3)  # robot i sends i
    neighbour_sum = (payload[index] * mask.unsqueeze(-1)).sum(dim=1)[:, 0]
    expected = [sum(graph.neighbors(i)) for i in range(5)]
    assert neighbour_sum.tolist() == expected


def test_static_and_disk_graph_over_rounds():
    static = StaticGraph(cycle_graph(4))
    assert static.is_static and static.graph_at(0) is static.graph_at(7)
    moving = DiskGraph(radius=1.0)
    near = moving.graph_at(0, np.array([[0.0, 0.0], [0.5, 0.0]]))
    far = moving.graph_at(1, np.array([[0.0, 0.0], [5.0, 0.0]]))
    assert near.number_of_edges() == 1 and far.number_of_edges() == 0
    with pytest.raises(ValueError, match="positions"):
        moving.graph_at(0, None)


def test_edge_dropout_loses_messages_one_way_deterministically():
    base = StaticGraph(complete_graph(10))  # 45 edges, 90 messages a round
    dropout = EdgeDropout(base, drop_prob=0.3, seed=3)
    rounds = [dropout.graph_at(k) for k in range(40)]
    again = EdgeDropout(base, drop_prob=0.3, seed=3)
    assert all(isinstance(g, nx.DiGraph) for g in rounds)
    assert all(nx.utils.edges_equal(g.edges, again.graph_at(k).edges) for k, g in enumerate(rounds))
    kept = np.array([g.number_of_edges() for g in rounds])
    assert kept.mean() / 90 == pytest.approx(0.7, abs=0.05)
    one_way = sum(1 for g in rounds for i, j in g.edges if not g.has_edge(j, i))
    assert one_way > 100  # about 2 * 45 * 0.3 * 0.7 per round: a message lost one way only
    assert len({tuple(sorted(g.edges)) for g in rounds}) > 30  # the pattern changes per round
    assert all(sorted(g.nodes) == list(range(10)) for g in rounds)
    assert all({tuple(sorted(e)) for e in g.edges} <= set(base.graph.edges) for g in rounds)
    assert all(degree == 9 for g in rounds for _, degree in g.nodes(data="degree"))  # announced, not heard
    other_seed = EdgeDropout(base, drop_prob=0.3, seed=4).graph_at(0)
    assert not nx.utils.edges_equal(other_seed.edges, rounds[0].edges)
    assert EdgeDropout(base, 0.0, 0).graph_at(5).number_of_edges() == 90
    assert EdgeDropout(base, 1.0, 0).graph_at(5).number_of_edges() == 0
    index, mask = neighbour_table(rounds[0], 10)  # a robot's inbox lists whom it heard
    heard = {(int(index[i, k]), i) for i in range(10) for k in range(index.shape[1]) if mask[i, k]}
    assert heard == set(rounds[0].edges)


@pytest.mark.parametrize(
    ("kind", "field"),
    [("erdos_renyi", "edge_probability"), ("geometric", "target_connectivity"), ("disk", "radius")],
)
def test_graph_config_names_missing_field(kind, field):
    with pytest.raises(ValidationError, match=field):
        GraphConfig(kind=kind, num_robots=10)


def test_graph_config_rejects_bad_values():
    with pytest.raises(ValidationError, match="extra"):
        GraphConfig(kind="cycle", num_robots=10, radious=3.0)
    with pytest.raises(ValidationError, match="num_robots"):
        GraphConfig(kind="cycle", num_robots=0)
    with pytest.raises(ValidationError, match="edge_probability"):
        GraphConfig(kind="erdos_renyi", num_robots=10, edge_probability=1.5)
    with pytest.raises(ValidationError, match="kind"):
        GraphConfig(kind="torus", num_robots=10)


def test_build_graph_from_config():
    cycle = build_graph(GraphConfig(kind="cycle", num_robots=10))
    assert isinstance(cycle, StaticGraph) and cycle.graph_at(0).number_of_edges() == 10
    er = build_graph(GraphConfig(kind="erdos_renyi", num_robots=10, edge_probability=0.3, seed=2))
    assert nx.is_connected(er.graph_at(0))
    geo = build_graph(GraphConfig(kind="geometric", num_robots=10, target_connectivity=1.0))
    assert describe(geo.graph_at(0))["algebraic_connectivity"] == pytest.approx(1.0, abs=0.05)
    disk = build_graph(GraphConfig(kind="disk", num_robots=3, radius=2.0))
    assert isinstance(disk, DiskGraph)
    assert disk.graph_at(0, np.array([[0, 0], [1, 0], [9, 0]])).number_of_edges() == 1
    lossy = build_graph(GraphConfig(kind="complete", num_robots=6, drop_probability=0.5, seed=1))
    assert isinstance(lossy, EdgeDropout) and lossy.graph_at(0).number_of_edges() < 30
    config = GraphConfig.model_validate({"kind": "wheel", "num_robots": 5})
    assert build_graph(config).graph_at(0).number_of_edges() == 8
