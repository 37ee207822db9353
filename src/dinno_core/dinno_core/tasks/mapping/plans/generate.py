"""Deterministic generator of the built-in floor plans and their robot paths.

Run ``python -m dinno_core.tasks.mapping.plans.generate [OUT_DIR]`` to (re)write
``office`` and ``campus_wing`` (map YAML + PGM + ``*_paths.yaml``) into ``OUT_DIR``
(default: this package's directory). The output depends on nothing but this file.

Conventions: the building's interior spans ``[0, width] × [0, height]`` metres in the world
frame; the image adds ``margin`` metres of unknown space around it (so ``origin`` is
``[-margin, -margin, 0]``). Walls are drawn centred on their lines: exterior 0.30 m thick,
interior 0.15 m; doors are gaps 1.1–1.2 m wide. Closed shafts (lifts, stairs) are unknown
inside, as a SLAM map would show them.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dinno_core.tasks.mapping.floorplan import FloorPlan, save_floor_plan
from dinno_core.tasks.mapping.paths import PathSet, RobotPath, route_waypoints, save_paths

EXTERIOR = 0.30
INTERIOR = 0.15
PATH_CLEARANCE = 0.30
"""Every built-in path keeps at least this many metres from every occupied cell."""
ROUTE_CLEARANCE = 0.40
"""Clearance demanded of the grid route the splines are fitted to (a margin over PATH_CLEARANCE)."""

Point = tuple[float, float]


class Canvas:
    """Draws a building on a grid, in world metres."""

    def __init__(self, width: float, height: float, resolution: float = 0.05, margin: float = 1.0) -> None:
        self.width, self.height, self.resolution, self.margin = width, height, resolution, margin
        cols = int(round((width + 2 * margin) / resolution))
        rows = int(round((height + 2 * margin) / resolution))
        self.occupied = np.zeros((rows, cols), dtype=bool)
        self.unknown = np.ones((rows, cols), dtype=bool)
        self.origin = (-margin, -margin, 0.0)

    def _slices(self, x0: float, y0: float, x1: float, y1: float) -> tuple[slice, slice]:
        def edge(value: float, offset: float) -> int:
            return int(math.floor((value + offset) / self.resolution + 0.5 + 1e-6))

        c0, c1 = edge(min(x0, x1), self.margin), edge(max(x0, x1), self.margin)
        v0, v1 = edge(min(y0, y1), self.margin), edge(max(y0, y1), self.margin)
        rows = self.occupied.shape[0]
        return slice(rows - max(v1, v0 + 1), rows - v0), slice(c0, max(c1, c0 + 1))

    def floor(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """Mark a rectangle as known free floor."""
        index = self._slices(x0, y0, x1, y1)
        self.occupied[index] = False
        self.unknown[index] = False

    def box(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """An occupied rectangle (wall piece, furniture, column)."""
        index = self._slices(x0, y0, x1, y1)
        self.occupied[index] = True
        self.unknown[index] = False

    def void(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """Unknown space (inside a closed shaft)."""
        index = self._slices(x0, y0, x1, y1)
        self.occupied[index] = False
        self.unknown[index] = True

    def wall_h(self, y: float, x0: float, x1: float, thickness: float = INTERIOR) -> None:
        """A horizontal wall centred on ``y`` from ``x0`` to ``x1`` (ends extended to meet corners)."""
        h = thickness / 2
        self.box(x0 - h, y - h, x1 + h, y + h)

    def wall_v(self, x: float, y0: float, y1: float, thickness: float = INTERIOR) -> None:
        """A vertical wall centred on ``x`` from ``y0`` to ``y1``."""
        h = thickness / 2
        self.box(x - h, y0 - h, x + h, y1 + h)

    def door_h(self, y: float, x: float, width: float = 1.1) -> None:
        """A door centred at ``x`` in the horizontal wall at ``y``."""
        self.floor(x - width / 2, y - 0.2, x + width / 2, y + 0.2)

    def door_v(self, x: float, y: float, width: float = 1.1) -> None:
        """A door centred at ``y`` in the vertical wall at ``x``."""
        self.floor(x - 0.2, y - width / 2, x + 0.2, y + width / 2)

    def shell(self) -> None:
        """Floor and exterior walls of the whole building."""
        w, h = self.width, self.height
        self.floor(-EXTERIOR / 2, -EXTERIOR / 2, w + EXTERIOR / 2, h + EXTERIOR / 2)
        self.wall_h(0.0, 0.0, w, EXTERIOR)
        self.wall_h(h, 0.0, w, EXTERIOR)
        self.wall_v(0.0, 0.0, h, EXTERIOR)
        self.wall_v(w, 0.0, h, EXTERIOR)

    def to_plan(self, name: str) -> FloorPlan:
        return FloorPlan(self.occupied.copy(), self.unknown.copy(), self.resolution, self.origin, name=name)


def loop(x0: float, y0: float, x1: float, y1: float, inset: float = 1.0, start: str = "sw") -> list[Point]:
    """The four corners of a room ``[x0, x1] × [y0, y1]`` inset by ``inset``, counter-clockwise
    from corner ``start`` (one of sw, se, ne, nw)."""
    corners = {
        "sw": (x0 + inset, y0 + inset),
        "se": (x1 - inset, y0 + inset),
        "ne": (x1 - inset, y1 - inset),
        "nw": (x0 + inset, y1 - inset),
    }
    order = ["sw", "se", "ne", "nw"]
    i = order.index(start)
    return [corners[k] for k in order[i:] + order[:i]]


@dataclass
class Building:
    """A drawn plan and, per robot, the goal points its closed tour visits in order."""

    name: str
    canvas: Canvas
    tours: list[list[Point]] = field(default_factory=list)


# ---------------------------------------------------------------------------- office
def office() -> Building:
    """A 30 × 20 m office floor: a double-loaded corridor between two lobbies, 12 rooms.

    Corridor ``y ∈ [9, 11]`` from x = 5 to 25; lobbies ``[0, 5] × [6, 14]`` (west, with a
    reception desk) and ``[25, 30] × [6, 14]`` (east, with a sofa); rooms on both sides of the
    corridor and in the four corners; an open-plan office with desk clusters, a meeting room, a
    kitchen, restrooms, a lab with columns. 7 robot tours, one per region.
    """
    c = Canvas(30.0, 20.0)
    c.shell()
    # Corridor and lobby walls.
    c.wall_h(11.0, 5.0, 25.0)
    c.wall_h(9.0, 5.0, 25.0)
    c.wall_h(14.0, 0.0, 5.0)
    c.wall_h(6.0, 0.0, 5.0)
    c.wall_h(14.0, 25.0, 30.0)
    c.wall_h(6.0, 25.0, 30.0)
    # North partitions (x) and south partitions.
    for x in (5.0, 25.0):
        c.wall_v(x, 11.0, 20.0)
        c.wall_v(x, 0.0, 9.0)
    for x in (10.0, 14.0, 20.0):
        c.wall_v(x, 11.0, 20.0)
    for x in (13.0, 17.0, 21.0):
        c.wall_v(x, 0.0, 9.0)
    c.wall_h(4.5, 13.0, 17.0)  # restrooms split in two
    # Doors.
    c.door_h(14.0, 2.5)  # NW office from the west lobby
    c.door_h(6.0, 2.5)  # SW office from the west lobby
    c.door_h(14.0, 27.5)  # NE office from the east lobby
    c.door_h(6.0, 27.5)  # SE office from the east lobby
    for x in (7.5, 12.0, 17.0, 22.5):
        c.door_h(11.0, x)
    for x in (7.0, 11.0, 15.0, 19.0, 23.0):
        c.door_h(9.0, x)
    c.door_v(20.0, 16.0)  # meeting room ↔ kitchen
    c.door_h(4.5, 15.0)  # between the restrooms
    c.door_v(21.0, 5.0)  # office S3 ↔ lab
    # Furniture.
    c.box(0.15, 8.5, 0.9, 11.5)  # reception desk
    c.box(29.1, 8.0, 29.85, 12.0)  # sofa
    for x0 in (6.5, 9.5):
        for y0 in (2.5, 5.5):
            c.box(x0, y0, x0 + 2.0, y0 + 1.2)  # open-plan desk clusters
    c.box(15.5, 14.5, 18.5, 16.5)  # meeting table
    c.box(20.6, 19.2, 24.4, 19.85)  # kitchen counter
    c.box(21.8, 14.6, 23.2, 15.6)  # kitchen island
    c.box(5.6, 19.25, 7.2, 19.85)  # desks against north walls
    c.box(10.6, 19.25, 12.2, 19.85)
    c.box(0.6, 19.25, 2.2, 19.85)
    c.box(27.8, 19.25, 29.4, 19.85)
    c.box(17.6, 0.15, 19.2, 0.9)
    c.box(0.15, 0.6, 0.9, 2.2)
    c.box(29.1, 0.6, 29.85, 2.2)
    c.box(22.8, 2.8, 23.2, 3.2)  # lab columns
    c.box(22.8, 6.3, 23.2, 6.7)
    c.box(21.5, 0.15, 24.5, 0.75)  # lab bench

    tours = [
        # R0: west lobby, NW and SW offices.
        [(2.5, 12.5), *loop(0, 14, 5, 20, 1.3, "se"), (2.5, 12.5), (3.8, 10.0), (2.5, 7.5),
         *loop(0, 0, 5, 6, 1.4, "nw"), (2.5, 7.5), (1.8, 10.0)],
        # R1: north offices N1 and N2.
        [(7.5, 10.0), *loop(5, 11, 10, 20, 1.3, "se"), (7.5, 10.0), (12.0, 10.0), *loop(10, 11, 14, 20, 1.3, "se")],
        # R2: meeting room → kitchen → corridor.
        [(17.0, 10.0), (17.0, 12.2), (15.0, 12.6), (15.0, 18.6), (19.0, 18.6), (19.2, 16.0), (21.0, 16.0),
         (21.3, 18.4), (23.9, 18.4), (24.0, 12.3), (22.5, 12.0), (22.5, 10.0)],
        # R3: east lobby, NE and SE offices.
        [(27.5, 12.5), *loop(25, 14, 30, 20, 1.3, "se"), (27.5, 12.5), (26.2, 10.0), (27.5, 7.5),
         *loop(25, 0, 30, 6, 1.4, "nw"), (27.5, 7.5), (28.3, 10.0)],
        # R4: open-plan office, in through one door and out through the other.
        [(7.0, 10.0), *loop(5, 0, 13, 9, 1.0, "nw"), (11.0, 10.0)],
        # R5: restrooms: a figure of eight through the door between them.
        [(14.0, 8.0), (16.0, 8.0), (16.0, 5.6), (16.0, 3.3), (16.0, 1.2), (14.0, 1.2), (14.0, 3.3),
         (14.0, 5.6)],
        # R6: office S3 → lab → corridor.
        [(19.0, 10.0), (19.0, 7.6), (18.0, 6.0), (18.0, 2.0), (20.0, 2.0), (20.0, 5.0), (22.0, 5.0),
         (22.0, 2.0), (24.0, 2.0), (24.0, 7.6), (23.0, 8.0)],
    ]
    return Building("office", c, tours)


# ----------------------------------------------------------------------- campus wing
def campus_wing() -> Building:
    """A 50 × 30 m university wing: a corridor ring around a lecture hall, a closed lift/stair
    core and two labs; classrooms along the south façade; offices, a seminar room, a library
    and a lounge along the north façade; a side room and a stairwell at each end. 9 robot
    tours, one per region; no robot's lidar reaches every part of the building.
    """
    c = Canvas(50.0, 30.0)
    c.shell()
    door = 1.2
    # Corridor ring: south y ∈ [8, 10.5], north y ∈ [19.5, 22], west x ∈ [4, 6.5], east x ∈ [43.5, 46].
    c.wall_h(8.0, 0.0, 50.0)
    c.wall_h(22.0, 0.0, 50.0)
    c.wall_v(4.0, 8.0, 22.0)
    c.wall_v(46.0, 8.0, 22.0)
    c.wall_h(10.5, 6.5, 43.5)
    c.wall_h(19.5, 6.5, 43.5)
    c.wall_v(6.5, 10.5, 19.5)
    c.wall_v(43.5, 10.5, 19.5)
    # Inside the ring: lecture hall [6.5, 22], closed core [22, 27], labs [27, 35] and [35, 43.5].
    for x in (22.0, 27.0, 35.0):
        c.wall_v(x, 10.5, 19.5)
    c.void(22.3, 10.8, 26.7, 19.2)
    # South classrooms and north rooms.
    for x in (7.0, 14.0, 21.0, 28.0, 35.0, 42.0):
        c.wall_v(x, 0.0, 8.0)
    for x in (8.0, 13.0, 18.0, 23.0, 33.0, 38.0, 43.0):
        c.wall_v(x, 22.0, 30.0)
    # Side rooms and (closed) stairwells beside the cross corridors.
    c.wall_h(15.0, 0.0, 4.0)
    c.wall_h(15.0, 46.0, 50.0)
    c.void(0.3, 8.3, 3.7, 14.7)
    c.void(46.3, 15.3, 49.7, 21.7)
    # Doors.
    classrooms = [(0.0, 7.0, 5.25), (7.0, 14.0, 10.5), (14.0, 21.0, 17.5), (21.0, 28.0, 24.5),
                  (28.0, 35.0, 31.5), (35.0, 42.0, 38.5), (42.0, 50.0, 44.75)]  # (x0, x1, door x)
    for _, _, x in classrooms:
        c.door_h(8.0, x, door)
    for x in (5.25, 10.5, 15.5, 20.5, 28.0, 35.5, 40.5, 44.75):
        c.door_h(22.0, x, door)
    c.door_h(10.5, 10.0, door)  # lecture hall: two doors south, one north
    c.door_h(10.5, 18.5, door)
    c.door_h(19.5, 14.0, door)
    c.door_h(10.5, 31.0, door)  # labs: one door on each corridor
    c.door_h(19.5, 31.0, door)
    c.door_h(10.5, 39.0, door)
    c.door_h(19.5, 39.0, door)
    c.door_v(35.0, 15.0, door)  # between the labs
    c.door_v(4.0, 18.5, door)  # west side room
    c.door_v(46.0, 11.5, door)  # east side room
    # Furniture.
    for y0 in (13.0, 15.0, 17.0):
        c.box(12.0, y0, 17.0, y0 + 0.6)  # lecture-hall benches
    c.box(7.5, 14.2, 8.5, 15.8)  # lectern
    for x0 in (29.0, 37.5):
        c.box(x0, 12.8, x0 + 3.5, 13.6)  # lab benches
        c.box(x0, 16.4, x0 + 3.5, 17.2)
    for x0, _, _ in classrooms:
        for y0 in (2.0, 4.4):
            c.box(x0 + 2.5, y0, x0 + 5.0, y0 + 0.6)  # classroom tables
    for x0 in (25.0, 27.5, 30.0):
        c.box(x0, 25.0, x0 + 0.6, 28.0)  # library shelves
    c.box(1.5, 25.5, 5.5, 26.7)  # seminar table
    c.box(45.0, 29.1, 48.5, 29.85)  # lounge sofa and coffee table
    c.box(46.0, 25.0, 47.5, 26.0)
    for x0 in (8.6, 13.6, 18.6, 33.6, 38.6):
        c.box(x0, 29.3, x0 + 1.6, 29.85)  # office desks
    c.box(0.15, 17.8, 0.7, 19.2)  # cabinets in the side rooms
    c.box(49.3, 10.8, 49.85, 12.2)

    def classroom(i: int) -> list[Point]:
        x0, x1, xd = classrooms[i]
        return [(xd, 9.25), *loop(x0, 0.0, x1, 8.0, 1.0, "nw"), (xd, 9.25)]

    def office_north(x0: float, x1: float, xd: float) -> list[Point]:
        return [(xd, 20.75), *loop(x0, 22.0, x1, 30.0, 1.3, "se"), (xd, 20.75)]

    tours = [
        [*classroom(0), *classroom(1)],  # R0
        [*classroom(2), *classroom(3)],  # R1
        [*classroom(4), *classroom(5)],  # R2
        # R3: last classroom, east side room (door in its west wall) via the east cross corridor.
        [*classroom(6), (44.75, 11.5), *loop(46.0, 8.0, 50.0, 15.0, 1.3, "sw"), (44.75, 11.5)],
        # R4: lecture hall (in through the east door, out through the north one), west corridors.
        [(18.5, 9.25), (18.5, 11.8), (20.8, 12.2), (20.8, 18.4), (14.0, 18.6), (14.0, 20.75), (5.25, 20.75),
         (5.25, 9.25)],
        # R5: both labs through the door between them.
        [(31.0, 9.25), (31.0, 11.0), (28.3, 11.9), (28.3, 18.3), (33.9, 18.3), (33.9, 15.0), (36.1, 15.0),
         (36.1, 18.3), (42.4, 18.3), (42.4, 11.9), (39.0, 11.6), (39.0, 9.25)],
        # R6: seminar room, west side room, two offices.
        [*office_north(0.0, 8.0, 5.25)[:-1], (5.25, 18.5), *loop(0.0, 15.0, 4.0, 22.0, 1.3, "ne"),
         (5.25, 18.5), (5.25, 20.75), *office_north(8.0, 13.0, 10.5), *office_north(13.0, 18.0, 15.5)],
        # R7: office [18, 23] and the library.
        [*office_north(18.0, 23.0, 20.5), (28.0, 20.75), (28.0, 23.5), (32.0, 23.5), (32.0, 28.8), (29.05, 28.8),
         (29.05, 24.2), (26.55, 24.2), (26.55, 28.8), (24.0, 28.8), (24.0, 23.5), (27.0, 23.0)],
        # R8: two offices and the lounge.
        [*office_north(33.0, 38.0, 35.5), *office_north(38.0, 43.0, 40.5), *office_north(43.0, 50.0, 44.75)],
    ]
    return Building("campus_wing", c, tours)


BUILDINGS = {"office": office, "campus_wing": campus_wing}


def build_paths(building: Building) -> PathSet:
    """Route each tour through the plan and fit its spline; raise if a path comes too close to a wall."""
    plan = building.canvas.to_plan(building.name)
    paths = []
    for index, goals in enumerate(building.tours):
        waypoints = route_waypoints(plan, np.asarray(goals), clearance=ROUTE_CLEARANCE)
        path = RobotPath(waypoints, name=f"robot_{index}")
        clearance = path.min_clearance(plan)
        if clearance < PATH_CLEARANCE:
            raise RuntimeError(f"{building.name} robot_{index}: path clearance {clearance:.3f} m < {PATH_CLEARANCE} m")
        paths.append(path)
    return PathSet(paths=paths, clearance=PATH_CLEARANCE, plan=building.name)


def generate(out_dir: str | Path, names: Sequence[str] = tuple(BUILDINGS)) -> list[Path]:
    """Write every named plan (YAML + PGM) and its path file into ``out_dir``; returns the files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        building = BUILDINGS[name]()
        yaml_path = save_floor_plan(building.canvas.to_plan(name), out_dir / f"{name}.yaml")
        written += [yaml_path, yaml_path.with_suffix(".pgm")]
        written.append(save_paths(build_paths(building), out_dir / f"{name}_paths.yaml"))
    return written


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    out_dir = Path(args[0]) if args else Path(__file__).resolve().parent
    for path in generate(out_dir):
        print(path)


if __name__ == "__main__":
    main()
