"""8-bit weights with a per-chunk offset and scale: what a robot sends over a thin radio.

Each vector of ``n`` values is cut into chunks of :data:`CHUNK_SIZE` consecutive values (the last
one shorter). A chunk with minimum ``lo`` and maximum ``hi`` is sent as ``offset = lo``,
``scale = (hi - lo) / 255`` (float32 each) and one code per value,
``code = round((x - offset) / scale)`` in ``0..255``; the receiver takes ``offset + code * scale``.
Every value comes back within half a step, ``scale / 2`` (:func:`uint8_error_bound`), plus
float32 rounding. At ``CHUNK_SIZE = 256`` the 8 bytes of a chunk's offset and scale cost 1/32 of
a byte per value: 1.03 bytes per value against 4 for float32 (3.88x fewer).

The same functions serve the ROS codec (:mod:`dinno_ros.weights_codec`) and the simulated team
(:func:`wire_roundtrip`), so a simulation quantises exactly as the robots do. Non-finite input is
refused (:class:`ValueError`): NaN/Inf never get a code.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

CHUNK_SIZE = 256
"""Values per chunk sharing one offset and scale (fixed: part of the wire format)."""
LEVELS = 255
"""Largest code; codes are ``0..LEVELS``."""

WIRE_ENCODINGS = ("float32", "float16", "uint8")
"""Encodings a robot can send its weights in (names as the ROS node's ``encoding`` parameter)."""


def num_chunks(num_params: int) -> int:
    return math.ceil(num_params / CHUNK_SIZE)


def wire_nbytes(num_vectors: int, num_params: int, encoding: str) -> int:
    """Payload bytes of ``num_vectors`` vectors of ``num_params`` values sent in ``encoding``."""
    if encoding == "uint8":
        return num_vectors * (num_params + 8 * num_chunks(num_params))
    if encoding in ("float32", "float16"):
        return num_vectors * num_params * (4 if encoding == "float32" else 2)
    raise ValueError(f"unknown wire encoding {encoding!r}; allowed: {', '.join(WIRE_ENCODINGS)}")


def _chunked(values: Tensor) -> Tensor:
    """``[m, n]`` → ``[m, chunks, CHUNK_SIZE]``, the last chunk padded with its own last value."""
    m, n = values.shape
    pad = num_chunks(n) * CHUNK_SIZE - n
    if pad:
        values = torch.cat([values, values[:, -1:].expand(m, pad)], dim=1)
    return values.reshape(m, -1, CHUNK_SIZE)


def quantize_uint8(values: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """float ``[m, n]`` → ``(codes uint8 [m, n], offsets float32 [m, c], scales float32 [m, c])``.

    Raises :class:`ValueError` for NaN/Inf input or a chunk whose range overflows float32.
    """
    if values.ndim != 2:
        raise ValueError(f"expected values of shape [m, n], got {tuple(values.shape)}")
    if values.shape[1] == 0:
        empty = values.new_zeros((values.shape[0], 0), dtype=torch.float32)
        return values.new_zeros(values.shape, dtype=torch.uint8), empty, empty
    values = values.detach().to(torch.float64)
    if not torch.isfinite(values).all():
        raise ValueError("refusing to quantize non-finite values")
    chunks = _chunked(values)
    low, high = chunks.amin(dim=2), chunks.amax(dim=2)
    offsets = low.to(torch.float32)
    scales = ((high - low) / LEVELS).to(torch.float32)
    if not (torch.isfinite(offsets).all() and torch.isfinite(scales).all()):
        raise ValueError("refusing to quantize values out of float32 range")
    offsets64, scales64 = offsets.to(torch.float64)[..., None], scales.to(torch.float64)[..., None]
    steps = torch.where(scales64 > 0, (chunks - offsets64) / torch.where(scales64 > 0, scales64, 1.0), 0.0)
    codes = steps.round_().clamp_(0, LEVELS).to(torch.uint8)
    return codes.reshape(values.shape[0], -1)[:, : values.shape[1]], offsets, scales


def dequantize_uint8(codes: Tensor, offsets: Tensor, scales: Tensor) -> Tensor:
    """``codes uint8 [m, n]`` with their chunks' ``offsets, scales [m, c]`` → float32 ``[m, n]``."""
    m, n = codes.shape
    if offsets.shape != (m, num_chunks(n)) or scales.shape != offsets.shape:
        raise ValueError(f"offsets/scales must be [{m}, {num_chunks(n)}], got {tuple(offsets.shape)}/{tuple(scales.shape)}")
    if n == 0:
        return torch.zeros(m, 0, dtype=torch.float32)
    steps = _chunked(codes.to(torch.float64))  # float64: code * scale may pass float32's max on the way
    values = offsets.to(torch.float64)[..., None] + steps * scales.to(torch.float64)[..., None]
    return values.reshape(m, -1)[:, :n].to(torch.float32)


def uint8_error_bound(values: Tensor) -> Tensor:
    """The most each value may move in an 8-bit round trip: half its chunk's step, ``[m, n]``.

    Add float32 rounding (a few ulp of the chunk's largest magnitude) when comparing.
    """
    chunks = _chunked(values.detach().to(torch.float64))
    step = (chunks.amax(dim=2) - chunks.amin(dim=2)) / LEVELS
    return (step[..., None] / 2).expand_as(chunks).reshape(values.shape[0], -1)[:, : values.shape[1]]


def wire_roundtrip(values: Tensor, encoding: str) -> Tensor:
    """What a neighbour receives when ``values [..., n]`` are sent in ``encoding``, in ``values``' dtype.

    ``float32`` returns ``values`` unchanged (so a float64 simulation keeps its precision, and
    float32 weights are what the wire delivers bit for bit); ``float16`` and ``uint8`` round as
    the wire does. Raises :class:`ValueError` for non-finite values under
    ``uint8`` (the ROS codec refuses to send them in every encoding).
    """
    if encoding == "float32":
        return values
    if encoding == "float16":
        return values.to(torch.float16).to(values.dtype)
    if encoding == "uint8":
        rows = values.reshape(-1, values.shape[-1])
        return dequantize_uint8(*quantize_uint8(rows)).to(values.dtype).reshape(values.shape)
    raise ValueError(f"unknown wire encoding {encoding!r}; allowed: {', '.join(WIRE_ENCODINGS)}")
