"""The predator–prey world: VMAS's ``simple_tag`` (the multi-agent particle world, vectorized in
torch) with the prey driven by a scripted policy and the predators by 5-component MPE actions.

VMAS is imported only when a world is built, so the rest of the core never needs it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

ACTION_SIZE = 5
"""MPE's continuous action: ``[no-op, right, left, up, down]``, each in [0, 1]."""


@dataclass(frozen=True)
class WorldSpec:
    """What the world is made of; the arena is the square ``[-bound, bound]²``."""

    num_predators: int = 3
    num_obstacles: int = 2
    bound: float = 1.0
    shared_reward: bool = False
    observe_obstacles: bool = False
    prey_wall_margin: float = 0.1
    mpe_physics: bool = True

    @property
    def observation_size(self) -> int:
        """Own velocity and position, the other agents' relative positions, the prey's velocity
        (and the obstacles' relative positions when observed): 12 for three predators."""
        return 2 + 2 + 2 * self.num_predators + 2 + (2 * self.num_obstacles if self.observe_obstacles else 0)


def mpe_action_to_force(action: Tensor) -> Tensor:
    """``[..., 5]`` MPE actions → ``[..., 2]`` VMAS forces in [-1, 1], the way MPE maps them:
    each component clipped to [0, 1], ``u = (right - left, up - down)``."""
    a = action.clamp(0.0, 1.0)
    return torch.stack((a[..., 1] - a[..., 2], a[..., 3] - a[..., 4]), dim=-1)


def flee_nearest(prey_pos: Tensor, predator_pos: Tensor, bound: float, margin: float) -> Tensor:
    """The scripted prey (the paper's reference heuristic): run straight away from the nearest
    predator at full force, dropping any push into a wall once within ``margin`` of it.

    ``prey_pos [E, 2]``, ``predator_pos [E, P, 2]`` → force ``[E, 2]`` in [-1, 1].
    """
    away = prey_pos[:, None, :] - predator_pos  # [E, P, 2]
    nearest = away.norm(dim=-1).argmin(dim=1)
    direction = away[torch.arange(len(away)), nearest]
    force = direction / direction.abs().amax(dim=-1, keepdim=True).clamp_min(1e-9)
    limit = bound - margin
    outward = ((prey_pos >= limit) & (force > 0)) | ((prey_pos <= -limit) & (force < 0))
    return torch.where(outward, 0.0, force)


def use_mpe_physics(world) -> None:
    """Step a VMAS world like the original multi-agent particle environments (what the paper's
    reference ran): one 0.1 s integration step per environment step and MPE's contact force 100
    with margin 1e-3. VMAS's simple_tag takes 10 substeps with contact force 500 instead (stiffer,
    5x the cost). Same damping (0.25), masses, speeds and accelerations either way."""
    from vmas.simulator.utils import COLLISION_FORCE

    for name in ("_dt", "_substeps", "_sub_dt", "_collision_force", "_contact_margin"):
        if not hasattr(world, name):
            raise RuntimeError(f"this VMAS version's World has no {name}; pin vmas==1.5.2 or set mpe_physics: false")
    world._substeps = 1
    world._sub_dt = world._dt
    world._collision_force = COLLISION_FORCE
    world._contact_margin = 1e-3


class PredatorPreyWorld:
    """``num_envs`` simple-tag games stepped together; all tensors have a leading env axis ``E``.

    Predators are ``adversary_0..P-1`` in VMAS, the prey is ``agent_0``. Each predator is
    rewarded by VMAS: +10 for each of its collisions with the prey and −0.1 × its distance to
    the prey every step (``shared_reward``: every predator gets the sum of all of them).
    """

    def __init__(self, spec: WorldSpec, num_envs: int, seed: int) -> None:
        import vmas  # optional dependency: only the predator–prey task needs it

        self.spec = spec
        self.num_envs = num_envs
        self.env = vmas.make_env(
            "simple_tag", num_envs=num_envs, device="cpu", continuous_actions=True, seed=seed,
            num_adversaries=spec.num_predators, num_good_agents=1, num_landmarks=spec.num_obstacles,
            shape_adversary_rew=True, adversaries_share_rew=spec.shared_reward, bound=spec.bound,
        )
        if spec.mpe_physics:
            use_mpe_physics(self.env.world)
        self.predators = self.env.agents[: spec.num_predators]
        self.prey = self.env.agents[spec.num_predators]
        self.seed = seed
        self.observations = self._observe(self.env.reset(seed=seed))

    def reset(self, seed: int | None = None) -> Tensor:
        """New games in every env (VMAS's own seeded random state); returns observations ``[E, P, obs]``."""
        self.observations = self._observe(self.env.reset(seed=seed))
        return self.observations

    def reset_envs(self, envs: Tensor) -> Tensor:
        """New games in the envs where ``envs [E]`` is True; returns all observations ``[E, P, obs]``."""
        for index in envs.nonzero().flatten().tolist():  # VMAS resets one env at a time
            self.env.reset_at(index, return_observations=False)
        observations = self.env.get_from_scenario(get_observations=True, get_rewards=False, get_infos=False,
                                                  get_dones=False)[0]
        self.observations = self._observe(observations)
        return self.observations

    def _observe(self, observations: list[Tensor]) -> Tensor:
        """VMAS's predator observations ``[vel, pos, obstacles…, others…, prey vel]`` → ``[E, P, obs]``."""
        stacked = torch.stack(observations[: self.spec.num_predators], dim=1)
        if self.spec.observe_obstacles or self.spec.num_obstacles == 0:
            return stacked
        skip = 2 * self.spec.num_obstacles
        return torch.cat((stacked[..., :4], stacked[..., 4 + skip:]), dim=-1)

    def step(self, predator_actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One step with MPE actions ``[E, P, 5]``; returns ``(observations [E, P, obs],
        rewards [E, P], captures [E, P])`` (captures: predator touching the prey)."""
        forces = mpe_action_to_force(predator_actions)
        prey_force = flee_nearest(self.prey.state.pos, self.predator_positions(), self.spec.bound,
                                  self.spec.prey_wall_margin)
        actions = [forces[:, i] for i in range(self.spec.num_predators)] + [prey_force]
        observations, rewards, _, _ = self.env.step(actions)
        self.observations = self._observe(observations)
        return self.observations, torch.stack(rewards[: self.spec.num_predators], dim=1), self.captures()

    def predator_positions(self) -> Tensor:
        return torch.stack([p.state.pos for p in self.predators], dim=1)

    def captures(self) -> Tensor:
        """``[E, P]`` bool: predator ``i`` touches the prey."""
        distance = (self.predator_positions() - self.prey.state.pos[:, None]).norm(dim=-1)
        return distance < self.predators[0].shape.radius + self.prey.shape.radius

    def snapshot(self, env_index: int = 0) -> dict[str, object]:
        """Positions and radii of everything in one env (for pictures)."""
        return {
            "predators": self.predator_positions()[env_index].clone(),
            "prey": self.prey.state.pos[env_index].clone(),
            "obstacles": [lm.state.pos[env_index].clone() for lm in self.env.world.landmarks],
            "predator_radius": float(self.predators[0].shape.radius),
            "prey_radius": float(self.prey.shape.radius),
            "obstacle_radius": [float(lm.shape.radius) for lm in self.env.world.landmarks],
        }
