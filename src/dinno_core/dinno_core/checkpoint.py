"""Checkpoints that never lose work, and atomic result files.

File layout (format 2)::

    b"DINNOCKP"  8 bytes magic
    uint32 LE    format (2)
    uint64 LE    payload length
    32 bytes     SHA-256 of the payload
    payload      torch.save(state) (tensors and plain containers only; loaded with weights_only)

Rules
-----
* Written atomically (temporary file, fsync, rename, fsync of the directory): a reader, or a
  restart after SIGKILL, sees the old file or the new one, never half a file.
* Every way a file can be damaged is one :class:`CheckpointError` naming the file and what is
  wrong (missing, a directory, empty, truncated, not a checkpoint, checksum mismatch, unreadable,
  a missing entry, a wrong shape, NaN/Inf values, a negative round) — never a traceback — and
  reading never modifies the file.
* :func:`claim_checkpoint_path` never lets a run overwrite a checkpoint it did not resume from:
  the old file is kept aside under a new name first.

A :class:`CheckpointError` is a :class:`~dinno_core.config.ConfigError`: a node that cannot
resume stops before it starts, with the message, and writes nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import struct
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import Tensor

from dinno_core.config import ConfigError

MAGIC = b"DINNOCKP"
FORMAT = 2
_HEADER = struct.Struct("<8sIQ32s")


class CheckpointError(ConfigError):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"checkpoint {self.path}: {problem}")


# ----------------------------------------------------------------------------- atomic files


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError:
        pass


def json_safe(value: Any) -> Any:
    """``value`` with NaN/Inf floats replaced by ``None`` (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """Strict JSON (non-finite numbers become null), written atomically."""
    text = json.dumps(json_safe(data), indent=2, allow_nan=False).encode()
    atomic_write(Path(path), lambda handle: handle.write(text))


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors and plain containers) atomically, with its checksum.

    Refuses (``CheckpointError``) a state holding NaN/Inf tensors or a negative ``round``: a
    checkpoint is only ever written with something a run could resume from.
    """
    problem = state_problem(state)
    if problem:
        raise CheckpointError(path, f"not saved: the state {problem}")
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    header = _HEADER.pack(MAGIC, FORMAT, len(payload), hashlib.sha256(payload).digest())

    def write(stream: BinaryIO) -> None:
        stream.write(header)
        stream.write(payload)

    atomic_write(path, write)


def load_checkpoint(path: str | Path, required: Iterable[str] = ()) -> dict[str, Any]:
    """The state saved by :func:`save_checkpoint`, verified; :class:`CheckpointError` otherwise.

    ``required`` lists top-level entries the caller needs (dotted names reach into mappings,
    e.g. ``algorithm.theta``).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "does not exist")
    if path.is_dir():
        raise CheckpointError(path, "is a directory, not a checkpoint file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CheckpointError(path, f"cannot be read ({error.strerror or error})") from None
    if not data:
        raise CheckpointError(path, "is empty (0 bytes)")
    if len(data) < _HEADER.size or not data.startswith(MAGIC):
        raise CheckpointError(path, f"is not a DiNNO checkpoint (no {MAGIC.decode()} header; {len(data)} bytes)")
    _, version, length, digest = _HEADER.unpack_from(data)
    if version != FORMAT:
        raise CheckpointError(path, f"has format {version}; this version reads format {FORMAT}")
    payload = data[_HEADER.size:]
    if len(payload) < length:
        raise CheckpointError(path, f"is truncated: {len(payload)} of {length} payload bytes")
    if len(payload) > length:
        raise CheckpointError(path, f"has {len(payload) - length} bytes after its payload")
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(path, "is corrupted: the SHA-256 checksum of its contents does not match")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure is one clear error
        raise CheckpointError(path, f"cannot be decoded ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict):
        raise CheckpointError(path, f"holds a {type(state).__name__}, expected a mapping")
    for name in required:
        if _lookup(state, name) is _MISSING:
            raise CheckpointError(path, f"lacks the entry {name!r}")
    problem = state_problem(state)
    if problem:
        raise CheckpointError(path, problem)
    return state


def restore(path: str | Path, load: Callable[[], None]) -> None:
    """Run ``load()`` (e.g. ``algorithm.load_state_dict(state)``) and turn what it raises for a
    state that does not fit (wrong shape, missing entry, wrong type) into one
    :class:`CheckpointError` naming ``path``."""
    try:
        load()
    except CheckpointError:
        raise
    except KeyError as error:
        raise CheckpointError(path, f"lacks the entry {error.args[0]!r}") from None
    except (ValueError, TypeError, RuntimeError, IndexError, AttributeError) as error:
        raise CheckpointError(path, f"does not fit this model/algorithm: {error}") from None


def claim_checkpoint_path(path: str | Path, resuming: bool) -> Path | None:
    """Make ``path`` safe to write: unless this run resumed from it, an existing checkpoint there is
    renamed to ``<name>.kept-<UTC time>[-n]<suffix>`` (returned) so it is never overwritten."""
    path = Path(path)
    if resuming or not (path.exists() or path.is_symlink()):
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for attempt in range(1000):
        tag = f".kept-{stamp}" + (f"-{attempt}" if attempt else "")
        aside = path.with_name(path.stem + tag + path.suffix)
        if not (aside.exists() or aside.is_symlink()):
            os.rename(path, aside)
            return aside
    raise CheckpointError(path, "exists and could not be kept aside (1000 kept copies already)")


_MISSING = object()


def _lookup(state: dict[str, Any], dotted: str) -> Any:
    value: Any = state
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def state_problem(state: Any, where: str = "") -> str | None:
    """What makes ``state`` unfit to resume from: NaN/Inf in a floating tensor or float, or a
    negative ``round`` (``None`` if nothing)."""
    if isinstance(state, Tensor):
        if state.is_floating_point() and not bool(torch.isfinite(state).all()):
            return f"holds NaN/Inf values in {where or 'its tensor'}"
        return None
    if isinstance(state, float) and not math.isfinite(state):
        return f"holds a non-finite number in {where}"
    if isinstance(state, dict):
        for key, value in state.items():
            name = f"{where}.{key}" if where else str(key)
            if key == "round" and isinstance(value, int) and not isinstance(value, bool) and value < 0:
                return f"has a negative round ({name} = {value})"
            problem = state_problem(value, name)
            if problem:
                return problem
    elif isinstance(state, (list, tuple)):
        for index, value in enumerate(state):
            problem = state_problem(value, f"{where}[{index}]")
            if problem:
                return problem
    return None


def select_robot(state: Any, robot: int, num_robots: int) -> Any:
    """Robot ``robot``'s slice of a team state: every tensor with a leading robot axis keeps
    only that row (as a batch of one), everything else is copied as is."""
    if isinstance(state, Tensor):
        return state[robot:robot + 1].clone() if state.ndim >= 1 and state.shape[0] == num_robots else state.clone()
    if isinstance(state, dict):
        return {key: select_robot(value, robot, num_robots) for key, value in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(select_robot(value, robot, num_robots) for value in state)
    return state
