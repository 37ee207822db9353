"""The in-process simulated team: all robots step as one batched computation."""

from __future__ import annotations

import hashlib
from typing import Any

import networkx as nx
import torch
from torch import Tensor

from dinno_core.algorithms import DistributedAlgorithm, Inbox, RoundStats
from dinno_core.algorithms.dual_ledger import ACK_BITS, Acknowledgements
from dinno_core.graphs import CommunicationGraph, neighbour_table
from dinno_core.quantization import wire_nbytes
from dinno_core.wire_encoder import WireEncoder, acknowledged
from dinno_core.tasks.base import LocalData, TensorData


def robot_generator(seed: int, robot_index: int) -> torch.Generator:
    """The minibatch generator of one robot, identical in the simulated team and a ROS node."""
    digest = hashlib.sha256(f"dinno-robot:{seed}:{robot_index}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


class TeamData:
    """Draws one minibatch per robot from its own data with its own generator, stacked ``[R, B, ...]``.

    When every robot holds a :class:`~dinno_core.tasks.base.TensorData` of the same shape, their
    tensors are moved into one pooled tensor (each robot's dataset becomes a view of its slice)
    and a round's minibatches come out of ONE gather: each robot's generator still draws its own
    indices exactly as ``TensorData.sample`` would, so the batches are the same either way.
    """

    def __init__(self, datasets: list[LocalData], seed: int, robot_indices: list[int] | None = None) -> None:
        self.datasets = datasets
        indices = robot_indices if robot_indices is not None else list(range(len(datasets)))
        self.generators = [robot_generator(seed, i) for i in indices]
        self._pool = _pool_tensor_data(datasets)

    def sample(self, batch_size: int) -> tuple[Tensor, Tensor]:
        if self._pool is not None and batch_size > 0:
            inputs, targets, sizes, offsets = self._pool
            local = torch.stack([torch.randint(size, (batch_size,), generator=g)
                                 for size, g in zip(sizes, self.generators)])
            index = local + offsets[:, None]
            return inputs[index], targets[index]
        batches = [data.sample(batch_size, g) for data, g in zip(self.datasets, self.generators)]
        return torch.stack([b[0] for b in batches]), torch.stack([b[1] for b in batches])

    def state_dict(self) -> dict[str, list[Tensor]]:
        return {"generators": [g.get_state() for g in self.generators]}

    def load_state_dict(self, state: dict[str, list[Tensor]]) -> None:
        for generator, value in zip(self.generators, state["generators"]):
            generator.set_state(value)


def _pool_tensor_data(datasets: list[LocalData]) -> tuple[Tensor, Tensor, list[int], Tensor] | None:
    """``(inputs, targets, sizes, offsets)`` of all robots' TensorData in one tensor; None if not poolable."""
    if len(datasets) < 2 or not all(type(d) is TensorData for d in datasets):
        return None
    first = datasets[0]
    if any(d.inputs.shape[1:] != first.inputs.shape[1:] or d.targets.shape[1:] != first.targets.shape[1:]
           or d.inputs.dtype != first.inputs.dtype or d.targets.dtype != first.targets.dtype
           or d.inputs.device != first.inputs.device for d in datasets):
        return None
    inputs = torch.cat([d.inputs for d in datasets])
    targets = torch.cat([d.targets for d in datasets])
    sizes = [len(d) for d in datasets]
    offsets = torch.tensor([0, *sizes[:-1]], device=inputs.device).cumsum(0)
    for data, start, size in zip(datasets, offsets.tolist(), sizes):  # no second copy of the data
        data.inputs, data.targets = inputs[start:start + size], targets[start:start + size]
    return inputs, targets, sizes, offsets


def gather_inbox(outgoing: Tensor, graph: nx.Graph, ack_bits: Tensor | None = None,
                 ack_round: int = -1, ack_span: int = ACK_BITS, penalty: Tensor | None = None,
                 table: tuple[Tensor, Tensor] | None = None) -> Inbox:
    """Every robot's inbox for one round of ``graph``: one gather over the outgoing payloads.

    ``graph`` is undirected (every link delivers both ways) or an ``nx.DiGraph`` whose edge
    ``j -> i`` means ``i`` receives ``j``'s message. ``ack_bits [N, N]`` (``[j, i]``: the rounds
    of ``i`` that ``j`` used, bit ``b`` = round ``ack_round - b``) travel with the messages:
    robot ``i`` learns ``j``'s acknowledgements only when ``j``'s message reaches it; they cover
    the last ``ack_span`` rounds. ``penalty [N]``: what each robot announces with its weights
    (:meth:`~dinno_core.algorithms.base.DistributedAlgorithm.outgoing_penalty`). ``table``:
    ``neighbour_table(graph, N)`` when the caller already built it this round.
    """
    num_robots = outgoing.shape[0]
    index, mask = table if table is not None else neighbour_table(graph, num_robots)
    index, mask = index.to(outgoing.device), mask.to(outgoing.device)
    degrees = mask.sum(dim=1).to(outgoing.dtype)  # neighbours heard, as Inbox.degree counts them
    announced = nx.get_node_attributes(graph, "degree")  # lossy graphs: what each robot announces
    if announced:
        degrees = torch.tensor([announced.get(i, heard) for i, heard in enumerate(degrees.tolist())],
                               dtype=outgoing.dtype, device=outgoing.device)
    acks = None
    if ack_bits is not None:
        bits = torch.gather(ack_bits.T, 1, index)  # bits[i, k] = ack_bits[index[i, k], i]
        rounds = torch.where(mask, ack_round, -1) if ack_round >= 0 else torch.full_like(index, -1)
        acks = Acknowledgements(round=rounds, bits=torch.where(mask, bits, 0),
                                span=torch.full_like(index, min(ack_span, ACK_BITS)))
    sender_rho = None if penalty is None else torch.where(mask, penalty.to(outgoing)[index], 0.0)
    return Inbox(payloads=outgoing[index], mask=mask, sender_degrees=degrees[index], senders=index, acks=acks,
                 sender_rho=sender_rho)


def used_matrix(inbox: Inbox, num_robots: int) -> Tensor:
    """``[N, N]`` bool: ``[i, j]`` robot ``i`` had ``j``'s message in its inbox."""
    used = torch.zeros(num_robots, num_robots, dtype=torch.bool, device=inbox.mask.device)
    if inbox.senders is not None:
        used.scatter_(1, inbox.senders, inbox.mask)
    return used


class SimulatedTeam:
    """N robots in one process over a (possibly time-varying, lossy) communication graph.

    Each round: build the round's graph, gather every robot's neighbours' payloads in one tensor
    op, and step the algorithm for all robots at once. Each message also carries its sender's
    acknowledgements of the rounds it used (as a robot node's does), which DiNNO uses to keep its
    edge duals equal and opposite when messages are lost one way.
    """

    def __init__(self, algorithm: DistributedAlgorithm, graph: CommunicationGraph, data: TeamData,
                 wire_encoding: str = "float32", wire_delta: bool = False) -> None:
        self.algorithm = algorithm
        self.graph = graph
        self.data = data
        self.wire = WireEncoder(wire_encoding, wire_delta)
        self.current_graph: nx.Graph | None = None
        num_robots = algorithm.num_robots
        device = algorithm.theta.device
        self.ack_bits = torch.zeros(num_robots, num_robots, dtype=torch.long, device=device)
        self._acked_round = -1
        self._ack_span = 0
        # What each robot has heard of its receivers' acknowledgements ([i, j]: j's of i's rounds),
        # the newest per pair, as a robot node keeps them: the references a delta may use.
        self.heard_acks = Acknowledgements.none((num_robots, num_robots), device)
        algorithm.initialize(data.sample)

    def run_round(self, positions=None) -> RoundStats:
        """One synchronous round; ``positions [N, 2]`` feed position-based graphs."""
        round_index = self.algorithm.round
        self.current_graph = self.graph.graph_at(round_index, positions)
        num_robots = self.algorithm.num_robots
        acked = None
        table = None
        if self.wire.delta:  # the encoder needs the receivers before the inbox is gathered
            table = index, mask = neighbour_table(self.current_graph, num_robots)
            hears = torch.zeros(num_robots, num_robots, dtype=torch.bool).scatter_(1, index, mask)  # [j, i]
            acked = acknowledged(self.heard_acks, hears.T.to(self.ack_bits.device), self.wire.rounds)
        outgoing = self.wire.encode(self.algorithm.outgoing(), round_index, acked).sent
        inbox = gather_inbox(outgoing, self.current_graph, self.ack_bits, self._acked_round,
                             self._ack_span, penalty=self.algorithm.outgoing_penalty(), table=table)
        inbox.own_sent = outgoing  # what the neighbours received from each robot
        if self.wire.delta and inbox.acks is not None and inbox.senders is not None:
            for field in ("round", "bits", "span"):  # the acknowledgements that arrived this round
                heard = getattr(self.heard_acks, field)
                heard.scatter_(1, inbox.senders, torch.where(inbox.mask, getattr(inbox.acks, field),
                                                             heard.gather(1, inbox.senders)))
        stats = self.algorithm.step(inbox, self.data.sample)
        used = used_matrix(inbox, num_robots).long()
        self.ack_bits = ((self.ack_bits << 1) | used) & ((1 << ACK_BITS) - 1)
        self._acked_round = round_index
        self._ack_span = min(self._ack_span + 1, ACK_BITS)
        return stats

    def state_dict(self) -> dict[str, Any]:
        """The acknowledgements in flight and the wire's references (the algorithm and the data have their own)."""
        return {"ack_bits": self.ack_bits.clone(), "acked_round": self._acked_round, "ack_span": self._ack_span,
                "wire": self.wire.state_dict(),
                "heard_acks": {f: getattr(self.heard_acks, f).clone() for f in ("round", "bits", "span")}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ack_bits = state["ack_bits"].to(self.ack_bits).clone()
        self._acked_round = int(state["acked_round"])
        self._ack_span = int(state["ack_span"])
        if "wire" in state:  # older checkpoints: key frames first
            self.wire.load_state_dict(state["wire"])
            for name, value in state["heard_acks"].items():
                setattr(self.heard_acks, name, value.to(self.ack_bits).clone())

    @property
    def wire_encoding(self) -> str:
        return self.wire.encoding

    @property
    def bytes_per_message(self) -> int:
        """Payload bytes one robot sends per round in ``wire_encoding`` (the ROS message's ``payload``)."""
        algorithm = self.algorithm
        return wire_nbytes(algorithm.payload_vectors, algorithm.model.spec.numel, self.wire_encoding)


def consensus_error(theta: Tensor) -> float:
    """Root-mean-square distance of the robots' weights from their mean, ``sqrt(mean_i ||theta_i - mean||^2)``."""
    deviation = theta - theta.mean(dim=0, keepdim=True)
    return float(deviation.pow(2).sum(dim=1).mean().sqrt())
