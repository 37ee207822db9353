"""``episode.gif``: one predator–prey episode per algorithm, side by side, from the same start
(matplotlib's object API, frames assembled by Pillow; no display needed)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Circle
from PIL import Image
from torch import Tensor

from dinno_core.tasks.predator_prey.world import ACTION_SIZE

if TYPE_CHECKING:
    from dinno_core.params import FlatModel
    from dinno_core.tasks.predator_prey.task import PredatorPreyTask

__all__ = ["play_episode", "save_episode_gif"]

PREDATOR_COLOURS = ("tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive")


@torch.no_grad()
def play_episode(task: PredatorPreyTask, theta: Tensor, flat: FlatModel, stride: int) -> tuple[list[dict], float]:
    """One episode with the policies ``theta [R, n]`` acting on their mean actions; returns
    snapshots every ``stride`` steps and the team episode reward."""
    world = task.make_world(1, "animation")
    world.reset(seed=world.seed)  # VMAS keeps one random state for all its envs: same start for everyone
    frames, total = [world.snapshot()], 0.0
    for step in range(task.config.episode_length):
        outputs = task.act(lambda x: flat.forward(theta, x), world.observations)
        _, rewards, _ = world.step(outputs[..., :ACTION_SIZE].float())
        total += float(rewards.sum())
        if (step + 1) % stride == 0:
            frames.append(world.snapshot())
    return frames, total


def _draw(axes, snapshot: dict, bound: float, title: str) -> None:
    axes.set_xlim(-bound - 0.1, bound + 0.1)
    axes.set_ylim(-bound - 0.1, bound + 0.1)
    axes.set_aspect("equal")
    axes.set_xticks([])
    axes.set_yticks([])
    axes.plot([-bound, bound, bound, -bound, -bound], [-bound, -bound, bound, bound, -bound], color="0.6", lw=1)
    for position, radius in zip(snapshot["obstacles"], snapshot["obstacle_radius"]):
        axes.add_patch(Circle(position.tolist(), radius, color="0.25"))
    for i, position in enumerate(snapshot["predators"]):
        axes.add_patch(Circle(position.tolist(), snapshot["predator_radius"],
                              color=PREDATOR_COLOURS[i % len(PREDATOR_COLOURS)]))
    axes.add_patch(Circle(snapshot["prey"].tolist(), snapshot["prey_radius"], color="tab:green"))
    axes.set_title(title, fontsize=9)


def save_episode_gif(task: PredatorPreyTask, weights: dict[str, Tensor], flat: FlatModel, path: Path) -> Path:
    """Animate one episode per entry of ``weights`` (algorithm name → ``[R, n]``), side by side."""
    stride = task.config.animation_stride
    episodes = {name: play_episode(task, theta.to(flat.initial_weights().dtype), flat, stride)
                for name, theta in weights.items()}
    count = min(len(frames) for frames, _ in episodes.values())
    images = []
    for k in range(count):
        figure = Figure(figsize=(3.2 * len(episodes), 3.5), dpi=72)
        for column, (name, (frames, total)) in enumerate(episodes.items(), start=1):
            axes = figure.add_subplot(1, len(episodes), column)
            _draw(axes, frames[k], task.spec.bound,
                  f"{name}: step {k * stride}/{task.config.episode_length}\nteam reward {total:.0f}")
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        buffer.seek(0)
        images.append(Image.open(buffer).convert("P", palette=Image.Palette.ADAPTIVE))
    images[0].save(path, save_all=True, append_images=images[1:], duration=60, loop=0, optimize=True)
    return path
