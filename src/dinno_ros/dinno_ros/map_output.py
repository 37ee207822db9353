"""A mapping robot's current map as ROS messages: ``nav_msgs/OccupancyGrid`` and a mono8 image.

The map is the robot's network (the core's :class:`~dinno_core.tasks.mapping.model.FourierMLP`)
evaluated at the cell centres of the task's evaluation grid (``task.grid``: the plan's known
bounds at ``validation_grid_resolution`` metres, row 0 = top) by the core's
``MappingTask.render_map``.

* :func:`occupancy_grid` follows the ``map_server`` conventions RViz expects: ``info.resolution``
  metres per cell, ``info.origin`` = world pose of the lower-left corner of cell (0, 0), ``data``
  row-major starting at the origin (row 0 = the BOTTOM row, y = ymin), values 0..100 = the
  predicted occupancy probability in percent, -1 = unknown (only where an ``unknown`` mask is
  given; the robot node publishes the network's opinion everywhere).
* :func:`map_image` is ``sensor_msgs/Image`` ``mono8`` for rqt_image_view, in image convention
  (row 0 = top, north up): ``255 * (1 - p)``, i.e. black = occupied, white = free, like a
  map_saver PGM.

Both fill their arrays from bytes (``array('b')`` / ``bytes``), never element by element.

In the robot node (``map_publish_every`` > 0, mapping task only), :class:`MapPublisher` publishes
on the relative topics ``dinno/map`` and ``dinno/map_image`` (RELIABLE, TRANSIENT_LOCAL, depth 1,
like map_server: a late RViz still gets the last map) every ``map_publish_every`` rounds and
after the last round.
"""

from __future__ import annotations

import array
from collections.abc import Callable
from typing import Any

import numpy as np

MAP_TOPIC = "dinno/map"
MAP_IMAGE_TOPIC = "dinno/map_image"

def occupancy_values(probability: np.ndarray, unknown: np.ndarray | None = None) -> np.ndarray:
    """int8 ``[H, W]`` occupancy in percent (0..100), -1 where ``unknown``; NaN counts as unknown."""
    p = np.asarray(probability, dtype=np.float64)
    missing = ~np.isfinite(p)
    if unknown is not None:
        missing |= np.asarray(unknown, dtype=bool)
    values = np.rint(np.clip(np.nan_to_num(p, nan=0.0), 0.0, 1.0) * 100.0).astype(np.int8)
    values[missing] = -1
    return values


def occupancy_grid(probability: np.ndarray, resolution: float, origin_xy: tuple[float, float], frame_id: str,
                   stamp: Any = None, unknown: np.ndarray | None = None) -> Any:
    """``nav_msgs/OccupancyGrid`` of ``probability [H, W]`` (row 0 = TOP, as images and the core's
    render_map); ``origin_xy`` = world (x, y) of the lower-left corner of the bottom-left cell."""
    from nav_msgs.msg import OccupancyGrid

    values = occupancy_values(probability, unknown)
    rows, cols = values.shape
    msg = OccupancyGrid()
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
        msg.info.map_load_time = stamp
    msg.info.resolution = float(resolution)
    msg.info.width, msg.info.height = int(cols), int(rows)
    msg.info.origin.position.x, msg.info.origin.position.y = float(origin_xy[0]), float(origin_xy[1])
    msg.info.origin.orientation.w = 1.0
    msg.data = array.array("b", np.ascontiguousarray(values[::-1]).tobytes())  # row 0 = bottom
    return msg


def grid_probability(msg: Any) -> np.ndarray:
    """Inverse of :func:`occupancy_grid`: probabilities ``[H, W]`` (row 0 = top), NaN = unknown."""
    values = np.frombuffer(msg.data, dtype=np.int8).reshape(msg.info.height, msg.info.width)[::-1]
    return np.where(values < 0, np.nan, values / 100.0)


def image_pixels(probability: np.ndarray) -> np.ndarray:
    """uint8 ``[H, W]``: 255 free .. 0 occupied; unknown (NaN) is map_saver's grey 205."""
    p = np.asarray(probability, dtype=np.float64)
    pixels = np.rint(255.0 * (1.0 - np.clip(np.nan_to_num(p, nan=0.0), 0.0, 1.0))).astype(np.uint8)
    pixels[~np.isfinite(p)] = 205
    return pixels


def map_image(probability: np.ndarray, frame_id: str, stamp: Any = None) -> Any:
    """``sensor_msgs/Image`` (mono8, row 0 = top) of ``probability [H, W]``."""
    from sensor_msgs.msg import Image

    pixels = image_pixels(probability)
    msg = Image()
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = "mono8"
    msg.is_bigendian = 0
    msg.step = int(pixels.shape[1])
    msg.data = pixels.tobytes()
    return msg


class MapPublisher:
    """Publishes a mapping robot's map every ``every`` rounds (from the training thread).

    ``render() -> probabilities [H, W]`` evaluates the robot's current network on the task's
    evaluation grid ``grid`` (:meth:`dinno_ros.trainer.RobotTrainer.render_map`).
    """

    def __init__(self, node: Any, render: Callable[[], np.ndarray], grid: Any, every: int,
                 frame_id: str = "map", last_round: int = 0) -> None:
        from nav_msgs.msg import OccupancyGrid
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self.node = node
        self.render = render
        self.every = int(every)
        self.frame_id = frame_id
        self.last_round = int(last_round)
        self.resolution = float(grid.resolution)
        self.origin = (float(grid.xmin), float(grid.ymin))
        latched = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             history=HistoryPolicy.KEEP_LAST, depth=1)
        self.map_pub = node.create_publisher(OccupancyGrid, MAP_TOPIC, latched)
        self.image_pub = node.create_publisher(Image, MAP_IMAGE_TOPIC, latched)
        self.published = 0

    @classmethod
    def for_node(cls, node: Any, trainer: Any, options: Any) -> MapPublisher | None:
        """A publisher when the task has a map and ``options.map_publish_every`` > 0, else None."""
        grid = trainer.map_grid
        if options.map_publish_every <= 0 or grid is None:
            return None
        return cls(node, trainer.render_map, grid, options.map_publish_every, options.map_frame,
                   trainer.settings.rounds)

    def publish(self) -> None:
        probability = self.render()
        stamp = self.node.get_clock().now().to_msg()
        self.map_pub.publish(occupancy_grid(probability, self.resolution, self.origin, self.frame_id, stamp))
        self.image_pub.publish(map_image(probability, self.frame_id, stamp))
        self.published += 1

    def on_round(self, round_index: int) -> None:
        """After round ``round_index`` (rounds completed): publish every ``every`` rounds and at the end."""
        if round_index % self.every == 0 or (self.last_round and round_index == self.last_round):
            try:
                self.publish()
            except Exception as error:  # noqa: BLE001 - a map view must never stop training
                self.node.get_logger().error(f"could not publish the map: {error}", throttle_duration_sec=10.0)


__all__ = [
    "MAP_IMAGE_TOPIC",
    "MAP_TOPIC",
    "MapPublisher",
    "grid_probability",
    "image_pixels",
    "map_image",
    "occupancy_grid",
    "occupancy_values",
]
