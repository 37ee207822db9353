"""``episode.gif``: one predator–prey episode per algorithm, side by side, from the same start
(matplotlib's object API, frames assembled by Pillow; no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle
from PIL import Image
from torch import Tensor

from dinno_core.tasks.predator_prey.ppo import sample_actions
from dinno_core.tasks.predator_prey.world import ACTION_SIZE

if TYPE_CHECKING:
    from dinno_core.params import FlatModel
    from dinno_core.tasks.predator_prey.task import PredatorPreyTask

__all__ = ["play_episode", "save_episode_gif"]

PREDATOR_COLOURS = ("tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive")


@torch.no_grad()
def play_episode(task: PredatorPreyTask, theta: Tensor, flat: FlatModel, stride: int) -> tuple[list[dict], float]:
    """One episode with the policies ``theta [R, n]`` acting as they were trained (actions drawn
    around the actor's output, whose clipping to [0, 1] makes the noise part of the behaviour);
    returns snapshots every ``stride`` steps and the team episode reward. Same start and same
    noise for every call."""
    world = task.make_world(1, "animation")
    world.reset(seed=world.seed)  # VMAS keeps one random state for all its envs: same start for everyone
    generator = torch.Generator().manual_seed(world.seed)
    frames, total = [world.snapshot()], 0.0
    for step in range(task.config.episode_length):
        outputs = task.act(lambda x: flat.forward(theta, x), world.observations)
        actions, _ = sample_actions(outputs[..., :ACTION_SIZE].float(), generator)
        _, rewards, _ = world.step(actions)
        total += float(rewards.sum())
        if (step + 1) % stride == 0:
            frames.append(world.snapshot())
    return frames, total


def _scene(axes, snapshot: dict, bound: float) -> list[Circle]:
    """Draw the arena and obstacles of ``snapshot`` on ``axes``; return the predators' and the
    prey's circles (moved frame by frame)."""
    axes.set_xlim(-bound - 0.1, bound + 0.1)
    axes.set_ylim(-bound - 0.1, bound + 0.1)
    axes.set_aspect("equal")
    axes.set_xticks([])
    axes.set_yticks([])
    axes.plot([-bound, bound, bound, -bound, -bound], [-bound, -bound, bound, bound, -bound], color="0.6", lw=1)
    for position, radius in zip(snapshot["obstacles"], snapshot["obstacle_radius"]):
        axes.add_patch(Circle(position.tolist(), radius, color="0.25"))
    movers = [Circle(position.tolist(), snapshot["predator_radius"], color=PREDATOR_COLOURS[i % len(PREDATOR_COLOURS)])
              for i, position in enumerate(snapshot["predators"])]
    movers.append(Circle(snapshot["prey"].tolist(), snapshot["prey_radius"], color="tab:green"))
    for circle in movers:
        axes.add_patch(circle)
    return movers


def save_episode_gif(task: PredatorPreyTask, weights: dict[str, Tensor], flat: FlatModel, path: Path) -> Path:
    """Animate one episode per entry of ``weights`` (algorithm name → ``[R, n]``), side by side:
    predators in red/orange/purple, the prey in green, obstacles in black."""
    stride = task.config.animation_stride
    episodes = {name: play_episode(task, theta.to(flat.initial_weights().dtype), flat, stride)
                for name, theta in weights.items()}
    count = min(len(frames) for frames, _ in episodes.values())
    figure = Figure(figsize=(3.2 * len(episodes), 3.5), dpi=72)
    canvas = FigureCanvasAgg(figure)
    panels = []
    for column, (name, (frames, total)) in enumerate(episodes.items(), start=1):
        axes = figure.add_subplot(1, len(episodes), column)
        panels.append((axes, name, frames, total, _scene(axes, frames[0], task.spec.bound)))
    figure.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.84, wspace=0.06)
    images = []
    for k in range(count):
        for axes, name, frames, total, movers in panels:
            snapshot = frames[k]
            for circle, position in zip(movers, [*snapshot["predators"], snapshot["prey"]]):
                circle.center = position.tolist()
            axes.set_title(f"{name}: step {k * stride}/{task.config.episode_length}\n"
                           f"team episode reward {total:.0f}", fontsize=9)
        canvas.draw()
        frame = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        images.append(frame.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE))
    images[0].save(path, save_all=True, append_images=images[1:], duration=60, loop=0)
    return path
