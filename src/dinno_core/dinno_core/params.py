"""Flat weight vectors and batched functional evaluation of a model over a robot axis."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

from dinno_core.batched_layers import BatchedSequential

FORMULATIONS = ("auto", "vmap")
"""How :class:`FlatModel` batches over robots: ``auto`` uses :class:`BatchedSequential` where it
supports the model (grouped convolutions, batched matrix products) and ``vmap`` elsewhere."""


@dataclass(frozen=True)
class ParamSpec:
    """Names, shapes and order of a model's parameters in its flat weight vector."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, model: nn.Module) -> ParamSpec:
        named = list(model.named_parameters())
        return cls(tuple(n for n, _ in named), tuple(tuple(p.shape) for _, p in named))

    @property
    def sizes(self) -> list[int]:
        return [int(torch.Size(s).numel()) for s in self.shapes]

    @property
    def numel(self) -> int:
        return sum(self.sizes)

    @property
    def fingerprint(self) -> int:
        """A 63-bit hash of the architecture; robots with different models never mix weights."""
        text = ";".join(f"{n}:{'x'.join(map(str, s))}" for n, s in zip(self.names, self.shapes))
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        """Views of ``flat [n]`` shaped as the model's parameters (works under vmap)."""
        chunks = torch.split(flat, self.sizes)
        return {n: c.view(s) for n, c, s in zip(self.names, chunks, self.shapes)}

    def unflatten_batched(self, flat: Tensor) -> dict[str, Tensor]:
        """Views of ``flat [R, n]`` shaped ``[R, *shape]`` per parameter."""
        chunks = torch.split(flat, self.sizes, dim=1)
        return {n: c.view(flat.shape[0], *s) for n, c, s in zip(self.names, chunks, self.shapes)}

    def flatten(self, model: nn.Module) -> Tensor:
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


class FlatModel:
    """Evaluates a model for ``R`` flat weight vectors at once.

    ``loss_and_grad(theta [R, n], inputs [R, B, ...], targets [R, B, ...])`` returns the
    per-robot losses ``[R]`` and gradients ``[R, n]`` in one batched computation: with
    :class:`~dinno_core.batched_layers.BatchedSequential` where the model is a Sequential it
    supports (the MNIST CNN), with ``torch.func.vmap`` otherwise or when ``formulation="vmap"``.
    Both give every robot the numbers it gets when evaluated alone.
    """

    def __init__(self, model: nn.Module, loss: Callable[[Tensor, Tensor], Tensor],
                 formulation: str = "auto") -> None:
        if formulation not in FORMULATIONS:
            raise ValueError(f"formulation must be one of {FORMULATIONS}, got {formulation!r}")
        self.model = model
        self.spec = ParamSpec.of(model)
        self.buffers = {n: b for n, b in model.named_buffers()}
        self._loss = loss

        def robot_loss(flat: Tensor, inputs: Tensor, targets: Tensor) -> Tensor:
            outputs = functional_call(self.model, (self.spec.unflatten(flat), self.buffers), (inputs,))
            return self._loss(outputs, targets)

        def robot_forward(flat: Tensor, inputs: Tensor) -> Tensor:
            return functional_call(self.model, (self.spec.unflatten(flat), self.buffers), (inputs,))

        self._loss_and_grad = vmap(grad_and_value(robot_loss))
        self._forward_shared = vmap(robot_forward, in_dims=(0, None))
        self._batched_loss = vmap(loss)
        self.batched = BatchedSequential.for_model(model) if formulation == "auto" else None
        self.formulation = "batched_sequential" if self.batched is not None else "vmap"
        """What runs: ``batched_sequential`` or ``vmap``."""

    def initial_weights(self) -> Tensor:
        return self.spec.flatten(self.model)

    def loss_and_grad(self, theta: Tensor, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        inputs, targets = _as_dtype(inputs, theta.dtype), _as_dtype(targets, theta.dtype)
        if self.batched is None:
            grads, losses = self._loss_and_grad(theta, inputs, targets)
            return losses, grads
        leaf = theta.detach().requires_grad_(True)
        with torch.enable_grad():
            outputs = self.batched(self.spec.unflatten_batched(leaf), inputs)
            losses = self._batched_loss(outputs, targets)
            (grads,) = torch.autograd.grad(losses.sum(), leaf)  # robots are independent
        return losses.detach(), grads

    @torch.no_grad()
    def forward(self, theta: Tensor, inputs: Tensor) -> Tensor:
        """Every robot's outputs on the same inputs: ``[R, V, ...]``."""
        inputs = _as_dtype(inputs, theta.dtype)
        if self.batched is None:
            return self._forward_shared(theta, inputs)
        return self.batched(self.spec.unflatten_batched(theta), inputs, shared=True)


def _as_dtype(values: Tensor, dtype: torch.dtype) -> Tensor:
    """Floating-point data follows the weights' dtype; integer labels stay as they are."""
    return values.to(dtype) if values.is_floating_point() else values
