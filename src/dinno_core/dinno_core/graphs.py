"""Communication graphs between robots: builders, spectra, mixing weights, neighbour tables.

Every graph is an undirected ``networkx.Graph`` on nodes ``0..N-1`` with no self-loops.
Static topologies (complete, cycle, path, star, wheel, Erdős–Rényi, random geometric with a
target algebraic connectivity) are built once; :class:`CommunicationGraph` objects give the
graph of each round, so the same code serves static, position-driven (:class:`DiskGraph`) and
lossy (:class:`EdgeDropout`) communication.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from abc import ABC, abstractmethod
from typing import Literal

import networkx as nx
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor

# --------------------------------------------------------------------------- builders


def _check_num_nodes(num_nodes: int) -> None:
    if num_nodes < 1:
        raise ValueError(f"a graph needs at least one node, got num_nodes={num_nodes}")


def complete_graph(num_nodes: int) -> nx.Graph:
    """Every robot talks to every other robot: ``N(N-1)/2`` edges."""
    _check_num_nodes(num_nodes)
    return nx.complete_graph(num_nodes)


def cycle_graph(num_nodes: int) -> nx.Graph:
    """A ring ``0-1-…-(N-1)-0``; for ``N < 3`` it degenerates to the path (no self-loops)."""
    _check_num_nodes(num_nodes)
    return nx.cycle_graph(num_nodes) if num_nodes >= 3 else nx.path_graph(num_nodes)


def path_graph(num_nodes: int) -> nx.Graph:
    """A line ``0-1-…-(N-1)``: ``N-1`` edges."""
    _check_num_nodes(num_nodes)
    return nx.path_graph(num_nodes)


def star_graph(num_nodes: int) -> nx.Graph:
    """Node 0 is the hub linked to all ``N-1`` others."""
    _check_num_nodes(num_nodes)
    return nx.star_graph(num_nodes - 1)


def wheel_graph(num_nodes: int) -> nx.Graph:
    """Node 0 is a hub linked to a ring of the other ``N-1`` nodes: ``2(N-1)`` edges for N ≥ 4."""
    _check_num_nodes(num_nodes)
    return nx.wheel_graph(num_nodes)


def erdos_renyi_graph(num_nodes: int, edge_probability: float, seed: int, max_tries: int = 1000) -> nx.Graph:
    """A connected G(N, p) graph.

    Draws ``G(N, p)`` with seeds ``seed, seed+1, …`` until one is connected (so the result is
    deterministic given ``seed``); raises ``RuntimeError`` after ``max_tries`` draws.
    """
    _check_num_nodes(num_nodes)
    if not 0.0 < edge_probability <= 1.0:
        raise ValueError(f"edge_probability must be in (0, 1], got {edge_probability}")
    for attempt in range(max_tries):
        graph = nx.gnp_random_graph(num_nodes, edge_probability, seed=seed + attempt)
        if nx.is_connected(graph):
            graph.graph["seed_used"] = seed + attempt
            return graph
    raise RuntimeError(
        f"no connected Erdős–Rényi graph with N={num_nodes}, p={edge_probability} in {max_tries} "
        f"draws from seed {seed}; raise edge_probability"
    )


def disk_graph(positions: np.ndarray, radius: float) -> nx.Graph:
    """Robots ``i != j`` are linked when ``‖x_i − x_j‖ <= radius``; may be disconnected.

    ``positions`` is ``[N, 2]`` (any units, same as ``radius``); node ``i`` gets attribute
    ``pos``.
    """
    points = np.asarray(positions, dtype=float)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"positions must be [N, 2], got shape {points.shape}")
    _check_num_nodes(len(points))
    distances = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)
    graph = nx.Graph()
    for i, point in enumerate(points):
        graph.add_node(i, pos=(float(point[0]), float(point[1])))
    rows, cols = np.nonzero(np.triu(distances <= radius, k=1))
    graph.add_edges_from(zip(rows.tolist(), cols.tolist()))
    graph.graph["radius"] = float(radius)
    return graph


def neighbours_in_range(me: str, team: Sequence[str], positions: Mapping[str, tuple[float, float]],
                        radius: float) -> list[str]:
    """The teammates of ``me`` within ``radius`` (:func:`disk_graph` over the known positions), in
    team order; none while ``me``'s own position is unknown."""
    if me not in positions:
        return []
    others = [r for r in team if r != me and r in positions]
    graph = disk_graph(np.array([positions[me]] + [positions[r] for r in others], dtype=float), radius)
    return [others[j - 1] for j in sorted(graph.neighbors(0))]


def geometric_graph(
    num_nodes: int,
    target_connectivity: float,
    seed: int,
    tolerance: float = 0.05,
    max_draws: int = 200,
) -> nx.Graph:
    """A connected random disk graph in the unit square with ``λ2`` near ``target_connectivity``.

    For each draw of uniform points (from ``numpy.random.default_rng(seed)``) the radius is
    searched by bisection over the sorted pairwise distances — λ2 never decreases when edges are
    added, so the candidate radii are ordered by λ2 — and the radius whose graph's λ2 is closest
    to the target is kept. The first draw with ``|λ2 − target| <= tolerance`` is returned (with
    graph attributes ``radius`` and ``algebraic_connectivity``); ``RuntimeError`` after
    ``max_draws`` draws. The target must lie between the path's λ2 ``2 − 2cos(π/N)`` (the least of
    any connected graph) and ``N`` (the complete graph).
    """
    _check_num_nodes(num_nodes)
    if num_nodes < 2:
        raise ValueError("a geometric graph with a target connectivity needs at least 2 nodes")
    if not 0.0 < target_connectivity <= num_nodes:
        raise ValueError(f"target_connectivity must be in (0, N={num_nodes}], got {target_connectivity}")
    path_connectivity = 2.0 - 2.0 * math.cos(math.pi / num_nodes)  # the least λ2 of any connected graph
    if target_connectivity < path_connectivity - tolerance:
        raise ValueError(
            f"target_connectivity {target_connectivity} is below {path_connectivity:.4g}, the smallest "
            f"λ2 of a connected graph on {num_nodes} nodes (the path)"
        )
    rng = np.random.default_rng(seed)
    best_error = math.inf
    for _ in range(max_draws):
        points = rng.random((num_nodes, 2))
        graph = _closest_radius_graph(points, target_connectivity)
        error = abs(graph.graph["algebraic_connectivity"] - target_connectivity)
        best_error = min(best_error, error)
        if error <= tolerance and nx.is_connected(graph):
            return graph
    raise RuntimeError(
        f"no geometric graph with N={num_nodes} reached λ2={target_connectivity}±{tolerance} in "
        f"{max_draws} draws (closest miss {best_error:.3g}); widen the tolerance"
    )


def _closest_radius_graph(points: np.ndarray, target: float) -> nx.Graph:
    """Among disk graphs of ``points`` at radii equal to pairwise distances, the one whose λ2 is closest to ``target``."""
    distances = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)
    radii = np.unique(distances[np.triu_indices(len(points), k=1)])

    def connectivity_at(index: int) -> float:
        return algebraic_connectivity(disk_graph(points, float(radii[index])))

    low, high = 0, len(radii) - 1  # find the smallest index whose λ2 >= target
    if connectivity_at(high) < target:
        low = high
    while low < high:
        middle = (low + high) // 2
        if connectivity_at(middle) >= target:
            high = middle
        else:
            low = middle + 1
    candidates = [i for i in (low - 1, low) if i >= 0]
    best = min(candidates, key=lambda i: abs(connectivity_at(i) - target))
    graph = disk_graph(points, float(radii[best]))
    graph.graph["algebraic_connectivity"] = algebraic_connectivity(graph)
    return graph


# --------------------------------------------------------------------------- properties


def laplacian_matrix(graph: nx.Graph, num_nodes: int | None = None) -> np.ndarray:
    """Dense graph Laplacian ``D − A`` ``[N, N]`` (self-loops ignored, nodes ``0..N-1``)."""
    size = graph.number_of_nodes() if num_nodes is None else num_nodes
    laplacian = np.zeros((size, size))
    for i, j in graph.edges():
        if i == j:
            continue
        laplacian[i, j] = laplacian[j, i] = -1.0
        laplacian[i, i] += 1.0
        laplacian[j, j] += 1.0
    return laplacian


def algebraic_connectivity(graph: nx.Graph) -> float:
    """Second-smallest Laplacian eigenvalue λ2 (dense ``eigvalsh``; meant for N up to a few thousand).

    Exactly 0.0 for a disconnected graph or a graph with fewer than 2 nodes.
    """
    if graph.number_of_nodes() < 2 or not nx.is_connected(graph):
        return 0.0
    eigenvalues = np.linalg.eigvalsh(laplacian_matrix(graph))
    return float(max(eigenvalues[1], 0.0))


def max_degree(graph: nx.Graph) -> int:
    """The largest number of neighbours any node has (0 for an edgeless graph)."""
    return max((sum(1 for j in graph.neighbors(i) if j != i) for i in graph.nodes), default=0)


def describe(graph: nx.Graph) -> dict[str, float | int | bool]:
    """Loggable summary: ``num_nodes``, ``num_edges``, ``algebraic_connectivity``, ``max_degree``, ``connected``."""
    return {
        "num_nodes": graph.number_of_nodes(),
        "num_edges": graph.number_of_edges(),
        "algebraic_connectivity": algebraic_connectivity(graph),
        "max_degree": max_degree(graph),
        "connected": graph.number_of_nodes() > 0 and nx.is_connected(graph),
    }


def metropolis_weights(graph: nx.Graph, num_nodes: int | None = None) -> np.ndarray:
    """Metropolis–Hastings mixing matrix ``[N, N]``, symmetric and doubly stochastic.

    ``W_ij = 1 / (1 + max(d_i, d_j))`` for each edge, ``W_ii = 1 − Σ_j W_ij``, zero elsewhere.
    An isolated node gets ``W_ii = 1``.
    """
    size = graph.number_of_nodes() if num_nodes is None else num_nodes
    degree = np.diag(laplacian_matrix(graph, size))
    weights = np.zeros((size, size))
    for i, j in graph.edges():
        if i != j:
            weights[i, j] = weights[j, i] = 1.0 / (1.0 + max(degree[i], degree[j]))
    np.fill_diagonal(weights, 1.0 - weights.sum(axis=1))
    return weights


def neighbour_table(graph: nx.Graph, num_nodes: int) -> tuple[Tensor, Tensor]:
    """Padded neighbour lists for batched gathers: ``(index [N, K] int64, mask [N, K] bool)``.

    Row ``i`` lists ``i``'s neighbours (for an ``nx.DiGraph``: the robots ``i`` hears, its
    predecessors) in ascending order, then padding entries that point at
    ``i`` itself with ``mask`` False. ``K = max(1, max degree)``: shapes are never empty, so an
    edgeless graph gives ``K = 1`` with every entry padding. Nodes absent from ``graph`` and
    self-loops count as having no neighbours.
    """
    edges = np.array([(u, v) for u, v in graph.edges() if u != v], dtype=np.int64).reshape(-1, 2)
    edges = edges[(edges < num_nodes).any(axis=1)]  # edges among nodes beyond the team are ignored
    if edges.size and (edges.max() >= num_nodes or edges.min() < 0):
        raise ValueError(f"graph has an edge to a node outside 0..{num_nodes - 1}")
    if graph.is_directed():  # edge u -> v: v hears u
        source, target = edges[:, 1], edges[:, 0]
    else:  # both directions, sorted by (source, target)
        source = np.concatenate([edges[:, 0], edges[:, 1]])
        target = np.concatenate([edges[:, 1], edges[:, 0]])
    order = np.lexsort((target, source))
    source, target = source[order], target[order]
    counts = np.bincount(source, minlength=num_nodes)
    column = np.arange(len(source)) - (np.cumsum(counts) - counts)[source]
    width = max(1, int(counts.max(initial=0)))
    index = torch.arange(num_nodes, dtype=torch.long).unsqueeze(1).repeat(1, width)
    mask = torch.zeros(num_nodes, width, dtype=torch.bool)
    rows, columns = torch.from_numpy(source), torch.from_numpy(column)
    index[rows, columns] = torch.from_numpy(target)
    mask[rows, columns] = True
    return index, mask


# --------------------------------------------------------------------------- time-varying graphs


class CommunicationGraph(ABC):
    """Who can talk to whom in each round."""

    #: True when :meth:`graph_at` returns the same graph every round (callers may cache).
    is_static: bool = False

    @abstractmethod
    def graph_at(self, round_index: int, positions: np.ndarray | None = None) -> nx.Graph:
        """The graph of round ``round_index``; ``positions [N, 2]`` is needed by position-driven graphs."""


class StaticGraph(CommunicationGraph):
    """The same graph every round."""

    is_static = True

    def __init__(self, graph: nx.Graph) -> None:
        self.graph = graph

    def graph_at(self, round_index: int, positions: np.ndarray | None = None) -> nx.Graph:
        return self.graph


class DiskGraph(CommunicationGraph):
    """Rebuilt every round from robot positions; robots farther apart than ``radius`` cannot talk.

    The graph may be disconnected: a robot with no neighbours trains on its own that round.
    """

    def __init__(self, radius: float) -> None:
        if radius <= 0:
            raise ValueError(f"radius must be positive, got {radius}")
        self.radius = radius

    def graph_at(self, round_index: int, positions: np.ndarray | None = None) -> nx.Graph:
        if positions is None:
            raise ValueError("DiskGraph needs robot positions [N, 2]; this task reports none")
        return disk_graph(positions, self.radius)


class EdgeDropout(CommunicationGraph):
    """Lossy links: each round every *message* of ``base`` is lost independently with ``drop_prob``.

    A radio loses a message one way: the graph of a round is an ``nx.DiGraph`` whose edge
    ``j -> i`` means ``i`` receives ``j``'s message, so ``i`` may hear ``j`` while ``j`` misses
    ``i`` (the case that breaks a per-robot ADMM dual). Every node keeps its base-graph degree
    as attribute ``degree`` (what a robot announces: it cannot know which messages are lost).
    Which messages drop is a deterministic function of ``(seed, round_index)`` and the base graph.
    """

    def __init__(self, base: CommunicationGraph, drop_prob: float, seed: int) -> None:
        if not 0.0 <= drop_prob <= 1.0:
            raise ValueError(f"drop_prob must be in [0, 1], got {drop_prob}")
        self.base = base
        self.drop_prob = drop_prob
        self.seed = seed

    def graph_at(self, round_index: int, positions: np.ndarray | None = None) -> nx.DiGraph:
        base_graph = self.base.graph_at(round_index, positions)
        edges = sorted((min(i, j), max(i, j)) for i, j in base_graph.edges() if i != j)
        directed = [(i, j) for i, j in edges] + [(j, i) for i, j in edges]
        rng = np.random.default_rng([self.seed, round_index])
        keep = rng.random(len(directed)) >= self.drop_prob
        graph = nx.DiGraph()
        graph.add_nodes_from(base_graph.nodes(data=True))
        nx.set_node_attributes(graph, dict(base_graph.degree()), "degree")
        graph.add_edges_from(edge for edge, kept in zip(directed, keep) if kept)
        return graph


# --------------------------------------------------------------------------- configuration

GraphKind = Literal["complete", "cycle", "path", "star", "wheel", "erdos_renyi", "geometric", "disk"]

_REQUIRED_FIELD = {"erdos_renyi": "edge_probability", "geometric": "target_connectivity", "disk": "radius"}


class GraphConfig(BaseModel):
    """Typed description of a team's communication graph (see :func:`build_graph`)."""

    model_config = ConfigDict(extra="forbid")

    kind: GraphKind
    num_robots: int = Field(ge=1)
    edge_probability: float | None = Field(default=None, gt=0.0, le=1.0)
    """Erdős–Rényi link probability."""
    target_connectivity: float | None = Field(default=None, gt=0.0)
    """Geometric graph: the wanted algebraic connectivity λ2."""
    connectivity_tolerance: float = Field(default=0.05, gt=0.0)
    """Geometric graph: accepted ``|λ2 − target|``."""
    radius: float | None = Field(default=None, gt=0.0)
    """Disk graph: communication range in metres."""
    drop_probability: float = Field(default=0.0, ge=0.0, le=1.0)
    """Per-round probability that a message is lost, independently on each direction of each edge."""
    seed: int = 0

    @model_validator(mode="after")
    def _kind_has_its_parameter(self) -> GraphConfig:
        field = _REQUIRED_FIELD.get(self.kind)
        if field is not None and getattr(self, field) is None:
            raise ValueError(f"graph kind '{self.kind}' needs field '{field}'")
        if self.kind == "geometric" and self.target_connectivity > self.num_robots:
            raise ValueError(
                f"target_connectivity {self.target_connectivity} exceeds num_robots {self.num_robots} "
                "(λ2 of the complete graph)"
            )
        return self


def build_static_graph(config: GraphConfig) -> nx.Graph:
    """The fixed graph a non-disk config describes."""
    n = config.num_robots
    if config.kind == "complete":
        return complete_graph(n)
    if config.kind == "cycle":
        return cycle_graph(n)
    if config.kind == "path":
        return path_graph(n)
    if config.kind == "star":
        return star_graph(n)
    if config.kind == "wheel":
        return wheel_graph(n)
    if config.kind == "erdos_renyi":
        return erdos_renyi_graph(n, config.edge_probability, config.seed)
    if config.kind == "geometric":
        return geometric_graph(n, config.target_connectivity, config.seed, config.connectivity_tolerance)
    raise ValueError(f"graph kind '{config.kind}' is not static")


def build_graph(config: GraphConfig) -> CommunicationGraph:
    """The communication graph a config describes, wrapped in :class:`EdgeDropout` when ``drop_probability > 0``."""
    graph: CommunicationGraph
    if config.kind == "disk":
        graph = DiskGraph(config.radius)
    else:
        graph = StaticGraph(build_static_graph(config))
    if config.drop_probability > 0.0:
        graph = EdgeDropout(graph, config.drop_probability, config.seed)
    return graph
