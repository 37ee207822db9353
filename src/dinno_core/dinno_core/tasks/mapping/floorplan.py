"""Floor plans in the ROS ``map_server`` convention (a YAML file beside a PGM/PNG image).

The YAML keys follow ``map_server`` / ``nav2_map_server``:

``image``
    Image path, relative to the YAML file's directory (or absolute).
``resolution``
    Metres per pixel.
``origin``
    ``[x, y, yaw]``: the world pose of the lower-left corner of the lower-left pixel.
``negate``
    ``0``/``1``; when 1, white means occupied.
``occupied_thresh`` / ``free_thresh``
    A pixel with occupancy probability ``p = (255 - v) / 255`` (``v`` the mean of its colour
    channels, ``p = v / 255`` when negated) is occupied when ``p > occupied_thresh``, free when
    ``p < free_thresh`` and unknown otherwise.
``mode``
    ``trinary`` (default), ``scale`` (pixels between the thresholds, or not fully opaque,
    are unknown here) or ``raw`` (pixel values 0..100 are occupancy percentages; other values
    are unknown).

Image row 0 is the top of the map: pixel ``(row, col)`` of an ``H``-row image is map cell
``(i, j) = (col, H - 1 - row)``, whose centre is at ``origin + R(yaw) [(i + ½) res, (j + ½) res]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image
from scipy import ndimage

__all__ = ["FloorPlan", "FloorPlanError", "load_floor_plan", "save_floor_plan"]

_MODES = ("trinary", "scale", "raw")

# Grey levels written by map_saver: occupied, free, unknown.
_PIXEL_OCCUPIED = 0
_PIXEL_FREE = 254
_PIXEL_UNKNOWN = 205


class FloorPlanError(ValueError):
    """A map YAML or image that cannot be loaded; the message names the file and the field."""


@dataclass
class FloorPlan:
    """An occupancy grid with its world pose.

    ``occupied`` and ``unknown`` are boolean images ``[H, W]`` with row 0 at the TOP (image
    convention). Cells that are neither are free. ``origin`` is ``(x, y, yaw)`` of the
    lower-left corner of the lower-left pixel, as in ``map_server``.
    """

    occupied: np.ndarray
    unknown: np.ndarray
    resolution: float
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    name: str = "map"
    _distance_cache: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.occupied = np.asarray(self.occupied, dtype=bool)
        self.unknown = np.asarray(self.unknown, dtype=bool) & ~self.occupied
        if self.occupied.ndim != 2 or self.occupied.shape != self.unknown.shape:
            raise FloorPlanError(
                f"occupied {self.occupied.shape} and unknown {self.unknown.shape} must be equal 2-D shapes"
            )
        if not (self.resolution > 0 and math.isfinite(self.resolution)):
            raise FloorPlanError(f"resolution must be a positive number of metres per pixel, got {self.resolution}")
        self.origin = tuple(float(v) for v in self.origin)  # type: ignore[assignment]

    # ------------------------------------------------------------------ shape
    @property
    def height(self) -> int:
        """Number of image rows."""
        return int(self.occupied.shape[0])

    @property
    def width(self) -> int:
        """Number of image columns."""
        return int(self.occupied.shape[1])

    @property
    def free(self) -> np.ndarray:
        """Boolean image of free (known, unoccupied) cells."""
        return ~self.occupied & ~self.unknown

    # ------------------------------------------------------------- transforms
    def world_to_map(self, xy: np.ndarray) -> np.ndarray:
        """World points ``[..., 2]`` to continuous map-frame metres ``[..., 2]``.

        The map frame has its origin at the lower-left corner of the lower-left pixel,
        x along image columns and y up along image rows (towards row 0).
        """
        xy = np.asarray(xy, dtype=float)
        ox, oy, yaw = self.origin
        dx, dy = xy[..., 0] - ox, xy[..., 1] - oy
        c, s = math.cos(yaw), math.sin(yaw)
        return np.stack([c * dx + s * dy, -s * dx + c * dy], axis=-1)

    def map_to_world(self, uv: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`world_to_map`."""
        uv = np.asarray(uv, dtype=float)
        ox, oy, yaw = self.origin
        c, s = math.cos(yaw), math.sin(yaw)
        return np.stack([ox + c * uv[..., 0] - s * uv[..., 1], oy + s * uv[..., 0] + c * uv[..., 1]], axis=-1)

    def world_to_grid(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image indices ``(rows, cols)`` (int arrays) of the pixels containing world points.

        Indices may fall outside the image; check with :meth:`in_bounds`.
        """
        uv = self.world_to_map(xy) / self.resolution
        cols = np.floor(uv[..., 0]).astype(np.int64)
        rows = self.height - 1 - np.floor(uv[..., 1]).astype(np.int64)
        return rows, cols

    def grid_to_world(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """World coordinates ``[..., 2]`` of the centres of image pixels ``(rows, cols)``."""
        rows = np.asarray(rows, dtype=float)
        cols = np.asarray(cols, dtype=float)
        uv = np.stack([(cols + 0.5) * self.resolution, (self.height - 1 - rows + 0.5) * self.resolution], axis=-1)
        return self.map_to_world(uv)

    def in_bounds(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Whether image indices lie inside the image."""
        return (rows >= 0) & (rows < self.height) & (cols >= 0) & (cols < self.width)

    def lookup(self, image: np.ndarray, xy: np.ndarray, outside: Any = False) -> np.ndarray:
        """Values of a per-pixel ``image [H, W]`` at world points ``[..., 2]``; ``outside`` beyond it."""
        rows, cols = self.world_to_grid(xy)
        inside = self.in_bounds(rows, cols)
        values = np.full(rows.shape, outside, dtype=image.dtype)
        values[inside] = image[rows[inside], cols[inside]]
        return values

    def is_occupied(self, xy: np.ndarray) -> np.ndarray:
        """Whether world points lie in occupied cells (outside the image counts as not occupied)."""
        return self.lookup(self.occupied, xy, outside=False)

    # ----------------------------------------------------------------- extent
    def world_corners(self) -> np.ndarray:
        """World coordinates ``[4, 2]`` of the image's corners."""
        w, h = self.width * self.resolution, self.height * self.resolution
        return self.map_to_world(np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]]))

    def known_bounds(self) -> tuple[float, float, float, float]:
        """World axis-aligned box ``(xmin, ymin, xmax, ymax)`` around every known (free or occupied) cell."""
        rows, cols = np.nonzero(~self.unknown)
        if len(rows) == 0:
            raise FloorPlanError(f"map {self.name!r} has no known cells")
        half = 0.5 * self.resolution
        uv = np.stack([(cols + 0.5) * self.resolution, (self.height - 1 - rows + 0.5) * self.resolution], axis=-1)
        lo, hi = uv.min(axis=0) - half, uv.max(axis=0) + half
        corners = self.map_to_world(np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]]))
        return (
            float(corners[:, 0].min()),
            float(corners[:, 1].min()),
            float(corners[:, 0].max()),
            float(corners[:, 1].max()),
        )

    def distance_to_occupied(self) -> np.ndarray:
        """Per-pixel distance in metres from each pixel centre to the nearest occupied pixel centre.

        Computed once with scipy's Euclidean distance transform and cached.
        """
        if self._distance_cache is None:
            if self.occupied.any():
                self._distance_cache = ndimage.distance_transform_edt(~self.occupied) * self.resolution
            else:
                self._distance_cache = np.full(self.occupied.shape, np.inf)
        return self._distance_cache

    def clearance(self, xy: np.ndarray) -> np.ndarray:
        """Distance (metres) from world points to the nearest occupied cell; 0 inside walls,
        ``-inf`` outside the image or in unknown space (never a safe place for a robot)."""
        dist = self.lookup(self.distance_to_occupied(), xy, outside=-np.inf)
        unknown = self.lookup(self.unknown, xy, outside=True)
        return np.where(unknown, -np.inf, dist)


# ---------------------------------------------------------------------- load
def _field(meta: dict[str, Any], key: str, yaml_path: Path, default: Any = ...) -> Any:
    if key in meta:
        return meta[key]
    if default is ...:
        raise FloorPlanError(f"{yaml_path}: required field '{key}' is missing")
    return default


def _number(value: Any, key: str, yaml_path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FloorPlanError(f"{yaml_path}: field '{key}' must be a finite number, got {value!r}")
    return float(value)


def _image_channels(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """``(mean colour value [H, W] in 0..255, alpha [H, W] or None)``."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F"):
        array = np.asarray(image).astype(np.float64)
        if image.mode in ("I", "I;16", "I;16B", "I;16L"):
            array = array * (255.0 / 65535.0) if array.max() > 255 else array
        elif image.mode == "1":
            array = array * 255.0
        return array, None
    if image.mode == "LA":
        array = np.asarray(image).astype(np.float64)
        return array[..., 0], array[..., 1]
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA")
    array = np.asarray(image).astype(np.float64)
    alpha = array[..., 3] if image.mode == "RGBA" else None
    return array[..., :3].mean(axis=-1), alpha


def load_floor_plan(yaml_path: str | Path) -> FloorPlan:
    """Load a ``map_server`` map YAML and its image into a :class:`FloorPlan`.

    Raises ``FileNotFoundError`` when the YAML or image is missing and :class:`FloorPlanError`
    (a ``ValueError``) naming the offending field for malformed contents.
    """
    yaml_path = Path(yaml_path)
    if not yaml_path.is_file():
        raise FileNotFoundError(f"map YAML not found: {yaml_path}")
    try:
        meta = yaml.safe_load(yaml_path.read_text())
    except yaml.YAMLError as error:
        raise FloorPlanError(f"{yaml_path}: not valid YAML ({error})") from error
    if not isinstance(meta, dict):
        raise FloorPlanError(f"{yaml_path}: expected a mapping of map_server fields, got {type(meta).__name__}")

    image_name = _field(meta, "image", yaml_path)
    if not isinstance(image_name, str) or not image_name:
        raise FloorPlanError(f"{yaml_path}: field 'image' must be a file name, got {image_name!r}")
    resolution = _number(_field(meta, "resolution", yaml_path), "resolution", yaml_path)
    if resolution <= 0:
        raise FloorPlanError(f"{yaml_path}: field 'resolution' must be > 0, got {resolution}")
    origin = _field(meta, "origin", yaml_path)
    if not isinstance(origin, (list, tuple)) or len(origin) != 3:
        raise FloorPlanError(f"{yaml_path}: field 'origin' must be [x, y, yaw], got {origin!r}")
    origin_xyz = tuple(_number(v, "origin", yaml_path) for v in origin)
    negate = _field(meta, "negate", yaml_path, 0)
    if negate not in (0, 1, True, False):
        raise FloorPlanError(f"{yaml_path}: field 'negate' must be 0 or 1, got {negate!r}")
    occupied_thresh = _number(_field(meta, "occupied_thresh", yaml_path, 0.65), "occupied_thresh", yaml_path)
    free_thresh = _number(_field(meta, "free_thresh", yaml_path, 0.196), "free_thresh", yaml_path)
    if not 0.0 <= occupied_thresh <= 1.0:
        raise FloorPlanError(f"{yaml_path}: field 'occupied_thresh' must be in [0, 1], got {occupied_thresh}")
    if not 0.0 <= free_thresh <= 1.0:
        raise FloorPlanError(f"{yaml_path}: field 'free_thresh' must be in [0, 1], got {free_thresh}")
    if free_thresh > occupied_thresh:
        raise FloorPlanError(
            f"{yaml_path}: field 'free_thresh' ({free_thresh}) must not exceed 'occupied_thresh' ({occupied_thresh})"
        )
    mode = str(_field(meta, "mode", yaml_path, "trinary")).lower()
    if mode not in _MODES:
        raise FloorPlanError(f"{yaml_path}: field 'mode' must be one of {_MODES}, got {meta['mode']!r}")

    image_path = Path(image_name)
    if not image_path.is_absolute():
        image_path = yaml_path.parent / image_path
    if not image_path.is_file():
        raise FileNotFoundError(f"{yaml_path}: image file named by field 'image' not found: {image_path}")
    try:
        with Image.open(image_path) as image:
            image.load()
            value, alpha = _image_channels(image)
    except OSError as error:
        raise FloorPlanError(f"{yaml_path}: cannot read image {image_path} ({error})") from error

    if mode == "raw":
        occupancy = value / 100.0
        unknown = (value < 0) | (value > 100)
        occupied = ~unknown & (occupancy > occupied_thresh)
        unknown |= ~occupied & ~(occupancy < free_thresh)
    else:
        # map_server: p = (255 - v) / 255, or v / 255 when negated.
        p = value / 255.0 if negate else (255.0 - value) / 255.0
        occupied = p > occupied_thresh
        free = p < free_thresh
        unknown = ~occupied & ~free
        if mode == "scale" and alpha is not None:
            transparent = alpha < 255
            unknown |= transparent
            occupied &= ~transparent
    return FloorPlan(
        occupied=occupied, unknown=unknown, resolution=resolution, origin=origin_xyz, name=yaml_path.stem
    )


# ---------------------------------------------------------------------- save
def save_floor_plan(plan: FloorPlan, yaml_path: str | Path, image_format: str = "pgm") -> Path:
    """Write ``plan`` as ``map_saver`` does: a trinary PGM/PNG (0 occupied, 254 free, 205 unknown)
    and a YAML beside it. Returns the YAML path."""
    yaml_path = Path(yaml_path)
    yaml_path.parent.mkdir(parents=True, exist_ok=True)
    image_format = image_format.lower()
    if image_format not in ("pgm", "png"):
        raise FloorPlanError(f"image_format must be 'pgm' or 'png', got {image_format!r}")
    image_path = yaml_path.with_suffix(f".{image_format}")
    pixels = np.full(plan.occupied.shape, _PIXEL_FREE, dtype=np.uint8)
    pixels[plan.unknown] = _PIXEL_UNKNOWN
    pixels[plan.occupied] = _PIXEL_OCCUPIED
    Image.fromarray(pixels).save(image_path)
    meta = {
        "image": image_path.name,
        "mode": "trinary",
        "resolution": float(plan.resolution),
        "origin": [float(v) for v in plan.origin],
        "negate": 0,
        "occupied_thresh": 0.65,
        "free_thresh": 0.196,
    }
    yaml_path.write_text(yaml.safe_dump(meta, sort_keys=False, default_flow_style=None))
    return yaml_path
