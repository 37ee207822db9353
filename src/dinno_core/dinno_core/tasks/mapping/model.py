"""The implicit map: a Fourier-feature MLP from world coordinates to occupancy logits.

Input ``x [..., 2]`` (world metres) is normalized with the plan's bounds to
``z = (x - centre) / half_extent`` (one scale for both axes, so the map is not stretched;
the plan fits in ``[-1, 1]²``). The first layer is ``sin(fourier_scale · (W z + b))``, then
ReLU layers, and a linear output giving one logit per point.

The paper applies ``sin(0.05 · (W p + b))`` to PIXEL coordinates ``p``; for a plan whose
half-extent is ``h`` pixels that is ``sin(0.05 h · (W z + b'))`` in normalized coordinates,
i.e. ``fourier_scale ≈ 0.05 h``. Our default, 20, corresponds to a half-extent of 400 px
(CubiCasa-sized images); with nn.Linear's default init ``|W| ≤ 1/√2``, the finest first-layer
wavelength is then about ``2π / (20 · 0.71) ≈ 0.44`` normalized units, i.e. ~3.3 m on a 30 m
wide office, and the ReLU layers combine these into sharper walls.

The module is functional-friendly: no in-place ops on parameters and no data-dependent
control flow, so it works under ``torch.func.functional_call`` + ``vmap``. The normalization
constants are buffers, not parameters, so they are not part of the shared weight vector.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["FourierMLP"]


class FourierMLP(nn.Module):
    """``widths = (2, h1, ..., 1)``: ``sin`` Fourier layer ``2 → h1``, ReLU layers, linear output.

    ``bounds = (xmin, ymin, xmax, ymax)`` in world metres sets the input normalization.
    ``forward(x [..., 2]) -> logits [...]``.
    """

    def __init__(
        self,
        bounds: Sequence[float],
        widths: Sequence[int] = (2, 256, 64, 64, 64, 1),
        fourier_scale: float = 20.0,
    ) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) < 3 or widths[0] != 2 or widths[-1] != 1:
            raise ValueError(f"widths must start with 2, end with 1 and have a hidden layer, got {widths}")
        xmin, ymin, xmax, ymax = (float(v) for v in bounds)
        if not (xmax > xmin and ymax > ymin):
            raise ValueError(f"bounds must be (xmin, ymin, xmax, ymax) with max > min, got {bounds}")
        self.widths = widths
        self.fourier_scale = float(fourier_scale)
        self.register_buffer("centre", torch.tensor([(xmin + xmax) / 2, (ymin + ymax) / 2]))
        self.register_buffer("half_extent", torch.tensor(max(xmax - xmin, ymax - ymin) / 2))
        self.fourier = nn.Linear(widths[0], widths[1])
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[1:-2], widths[2:-1]))
        self.output = nn.Linear(widths[-2], widths[-1])

    def forward(self, x: Tensor) -> Tensor:
        z = (x.to(self.centre.dtype) - self.centre) / self.half_extent  # float32 data, float64 models
        h = torch.sin(self.fourier_scale * self.fourier(z))
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return self.output(h).squeeze(-1)
