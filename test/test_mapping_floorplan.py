"""Floor plans: map_server YAML/PGM loading, conventions, errors, built-in plans."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from dinno_core.tasks.mapping.floorplan import FloorPlan, FloorPlanError, load_floor_plan, save_floor_plan
from dinno_core.tasks.mapping.plans import BUILTIN_PLANS, builtin_plan_yaml
from dinno_core.tasks.mapping.plans.generate import BUILDINGS


def write_map(tmp_path: Path, pixels: np.ndarray, **fields: object) -> Path:
    Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "m.pgm")
    meta = {"image": "m.pgm", "resolution": 0.1, "origin": [-2.0, 3.0, 0.0], "negate": 0,
            "occupied_thresh": 0.65, "free_thresh": 0.196}
    meta.update(fields)
    meta = {k: v for k, v in meta.items() if v is not None}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(meta))
    return tmp_path / "m.yaml"


def test_map_server_pixel_to_world_convention(tmp_path: Path) -> None:
    pixels = np.full((4, 6), 254)
    pixels[0, 0] = 0  # top-left pixel occupied
    pixels[3, 5] = 205  # bottom-right pixel unknown
    plan = load_floor_plan(write_map(tmp_path, pixels))
    assert plan.occupied.shape == (4, 6) and plan.occupied[0, 0] and plan.occupied.sum() == 1
    assert plan.unknown[3, 5] and plan.unknown.sum() == 1
    # origin is the lower-left corner of the lower-left pixel (row 3, col 0).
    np.testing.assert_allclose(plan.grid_to_world(3, 0), [-2.0 + 0.05, 3.0 + 0.05])
    # the top-left pixel's centre is 3.5 cells up
    np.testing.assert_allclose(plan.grid_to_world(0, 0), [-1.95, 3.35])
    rows, cols = plan.world_to_grid(np.array([[-1.95, 3.35], [-2.0 + 0.55, 3.01]]))
    assert rows.tolist() == [0, 3] and cols.tolist() == [0, 5]
    assert plan.is_occupied(np.array([-1.96, 3.34])) and not plan.is_occupied(np.array([-1.0, 3.1]))
    assert plan.known_bounds() == pytest.approx((-2.0, 3.0, -1.4, 3.4))


def test_origin_yaw_rotates_the_grid() -> None:
    plan = FloorPlan(np.zeros((2, 3), bool), np.zeros((2, 3), bool), 1.0, (1.0, 2.0, math.pi / 2))
    # Cell (row 1 = bottom, col 0) centre is (0.5, 0.5) in the map frame → rotated by 90°.
    np.testing.assert_allclose(plan.grid_to_world(1, 0), [0.5, 2.5], atol=1e-12)
    rows, cols = plan.world_to_grid(plan.grid_to_world(np.array([0, 1]), np.array([2, 1])))
    assert rows.tolist() == [0, 1] and cols.tolist() == [2, 1]


def test_thresholds_and_negate(tmp_path: Path) -> None:
    pixels = np.array([[0, 100, 160, 205, 254, 255]])
    plan = load_floor_plan(write_map(tmp_path, pixels))
    # p = (255 - v) / 255: 1.0, 0.61, 0.37, 0.196, 0.004, 0
    assert plan.occupied[0].tolist() == [True, False, False, False, False, False]
    assert plan.free[0].tolist() == [False, False, False, False, True, True]
    negated = load_floor_plan(write_map(tmp_path, pixels, negate=1))
    assert negated.occupied[0].tolist() == [False, False, False, True, True, True]
    assert negated.free[0].tolist() == [True, False, False, False, False, False]


def test_save_load_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    occupied = rng.random((30, 40)) < 0.2
    unknown = ~occupied & (rng.random((30, 40)) < 0.2)
    plan = FloorPlan(occupied, unknown, 0.05, (1.5, -2.25, 0.3), name="x")
    for fmt in ("pgm", "png"):
        path = save_floor_plan(plan, tmp_path / fmt / "saved.yaml", image_format=fmt)
        loaded = load_floor_plan(path)
        np.testing.assert_array_equal(loaded.occupied, occupied)
        np.testing.assert_array_equal(loaded.unknown, unknown)
        assert loaded.resolution == 0.05 and loaded.origin == pytest.approx((1.5, -2.25, 0.3))


def test_rgb_and_alpha_images(tmp_path: Path) -> None:
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3] = 254
    rgba[..., 3] = 255
    rgba[0, 0, :3] = 0
    rgba[1, 1, 3] = 0  # transparent: unknown in scale mode
    Image.fromarray(rgba).save(tmp_path / "c.png")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"image": "c.png", "resolution": 1.0, "origin": [0, 0, 0],
                                                     "mode": "scale"}))
    plan = load_floor_plan(tmp_path / "c.yaml")
    assert plan.occupied.tolist() == [[True, False], [False, False]]
    assert plan.unknown.tolist() == [[False, False], [False, True]]


@pytest.mark.parametrize(
    ("fields", "word"),
    [
        ({"occupied_thresh": 1.5}, "occupied_thresh"),
        ({"free_thresh": -0.1}, "free_thresh"),
        ({"free_thresh": 0.8, "occupied_thresh": 0.6}, "free_thresh"),
        ({"resolution": 0}, "resolution"),
        ({"resolution": "fine"}, "resolution"),
        ({"origin": [0, 0]}, "origin"),
        ({"mode": "ternary"}, "mode"),
        ({"negate": 2}, "negate"),
        ({"resolution": None}, "resolution"),
        ({"image": None}, "image"),
    ],
)
def test_bad_fields_name_the_field(tmp_path: Path, fields: dict, word: str) -> None:
    with pytest.raises(FloorPlanError, match=word):
        load_floor_plan(write_map(tmp_path, np.full((2, 2), 254), **fields))


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="map YAML"):
        load_floor_plan(tmp_path / "nope.yaml")
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"image": "gone.pgm", "resolution": 0.1, "origin": [0, 0, 0]}))
    with pytest.raises(FileNotFoundError, match="gone.pgm"):
        load_floor_plan(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("- just\n- a list\n")
    with pytest.raises(FloorPlanError, match="mapping"):
        load_floor_plan(tmp_path / "b.yaml")


@pytest.mark.parametrize("name", BUILTIN_PLANS)
def test_builtin_plans_load_and_match_their_generator(name: str) -> None:
    plan = load_floor_plan(builtin_plan_yaml(name))
    xmin, ymin, xmax, ymax = plan.known_bounds()
    width, height = xmax - xmin, ymax - ymin
    assert plan.resolution == 0.05
    if name == "office":
        assert 29 < width < 32 and 19 < height < 22
    else:
        assert 49 < width < 52 and 29 < height < 32
    occupied_fraction = plan.occupied[~plan.unknown].mean()
    assert 0.03 < occupied_fraction < 0.2  # walls and furniture, mostly floor
    drawn = BUILDINGS[name]().canvas.to_plan(name)  # the shipped files are what the generator draws
    np.testing.assert_array_equal(drawn.occupied, plan.occupied)
    np.testing.assert_array_equal(drawn.unknown, plan.unknown)
    assert drawn.origin == plan.origin
