"""A team on a lossy radio, each robot its own host: network namespaces, UDP only, a private
/dev/shm per robot, veths to a bridge, nftables for loss and cuts (see netns_team.py).

* loss: the robots' duals keep summing to zero; at 10 % every robot ends within 1e-4 (relative)
  of the optimum and at 30 % within 1e-2 (the transient of a late timeout);
  at 10 % the team keeps at least half the loss-free rounds per second (measured side by side);
* a cut-off robot: its non-neighbours never time out, its neighbours exactly once;
* a teammate sending 1e6 x weights and an outsider without the key: every such message dropped
  and counted under its reason, and the team still reaches the optimum.

Skipped, with the reason, where namespaces cannot be made (not root, no nftables).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dinno_core.algorithms.dual_ledger import dual_imbalance
from dinno_core.config import build_task
from dinno_core.tasks.convex import ConvexTaskConfig
from netns_team import NetnsTeam, unavailable

pytestmark = [pytest.mark.slow]
WHY_NOT = unavailable()
if WHY_NOT:
    pytestmark.append(pytest.mark.skip(reason=f"network-namespace tests: {WHY_NOT}"))

SEED = 0
TASK = {"name": "linear_regression", "num_features": 5, "rows_per_robot": 3, "noise_std": 0.1}
ALGORITHM = {"kind": "dinno", "rho_init": 1.0, "primal_steps": 20, "batch_size": 0,
             "optimizer": {"name": "sgd"}, "lr": {"kind": "constant", "start": 0.05}}
FINISH_TIMEOUT = 240.0


def cycle(robots: list[str], robot: str) -> list[str]:
    i, n = robots.index(robot), len(robots)
    return sorted({robots[(i - 1) % n], robots[(i + 1) % n]} - {robot}, key=robots.index)


def optimum(num_robots: int) -> np.ndarray:
    torch.manual_seed(SEED)
    return build_task(ConvexTaskConfig(**TASK), num_robots, SEED).optimum().numpy()


ROBOTS = ["robot_0", "robot_1", "robot_2", "robot_3"]


def make_team(tmp_path, ros_env, robots, **parameters) -> NetnsTeam:
    tmp_path.mkdir(parents=True, exist_ok=True)
    team = NetnsTeam(tmp_path, robots, ros_env, {
        "seed": SEED, "round_timeout": 2.0, "startup_timeout": 120.0, "algorithm": ALGORITHM, "task": TASK,
        **parameters})
    team.create()
    return team


def start(team: NetnsTeam, loss: int = 0) -> None:
    for robot in team.robots:
        team.set_loss(robot, loss)
    for robot in team.robots:
        team.start(robot, {"neighbours": cycle(team.robots, robot)})


def finish(team: NetnsTeam, names: list[str] | None = None) -> dict:
    codes = team.wait(FINISH_TIMEOUT)
    assert all(code == 0 for code in codes.values()), {n: (c, team.log(n)) for n, c in codes.items()}
    return {robot: team.results(robot) for robot in (names or team.robots)}


@pytest.fixture
def teams():
    made: list[NetnsTeam] = []
    yield made
    for team in made:
        team.stop()
        team.destroy()


def worst_error(results: dict, target: np.ndarray) -> float:
    return max(float(np.linalg.norm(np.array(r["weights"]) - target) / np.linalg.norm(target))
               for r in results.values())


def probe_imbalance(results: dict) -> float:
    """The core's ``dual_imbalance`` of the robots' dual probes (one projection of each dual): 0 when
    the duals sum to zero, as exact edge duals do."""
    return dual_imbalance(torch.tensor([[r["dual"]["probe"]] for r in results.values()], dtype=torch.float64))


def rounds_per_second(results: dict) -> float:
    """Rounds per second of the slowest robot, from its first to its last stepped round."""
    return min(r["rounds_stepped_this_run"] / r["training_s"] for r in results.values())


def summary(results: dict) -> str:
    return "; ".join(f"{name}: timeouts {r['timeouts']} drops {r['drops']} dual {r['dual']}"
                     for name, r in results.items())


def test_a_lossy_radio_keeps_the_optimum_and_most_of_the_rounds(tmp_path, ros_env, teams):
    """Loss-free and 10 % loss side by side (same machine load), then 30 %."""
    target = optimum(len(ROBOTS))
    clean = make_team(tmp_path / "loss0", ros_env, ROBOTS, rounds=100)
    lossy = make_team(tmp_path / "loss10", ros_env, ROBOTS, rounds=100)
    teams += [clean, lossy]
    start(clean, 0)
    start(lossy, 10)
    clean_results, lossy_results = finish(clean), finish(lossy)
    rate_clean, rate_lossy = rounds_per_second(clean_results), rounds_per_second(lossy_results)
    print(f"\nloss 0 %: {rate_clean:.1f} rounds/s, error {worst_error(clean_results, target):.2e}; "
          f"loss 10 %: {rate_lossy:.1f} rounds/s, error {worst_error(lossy_results, target):.2e}")
    assert worst_error(clean_results, target) < 1e-4, summary(clean_results)
    assert worst_error(lossy_results, target) < 1e-4, summary(lossy_results)
    assert rate_lossy >= 0.5 * rate_clean, (rate_lossy, rate_clean, summary(lossy_results))
    heavy = make_team(tmp_path / "loss30", ros_env, ROBOTS, rounds=100)
    teams.append(heavy)
    start(heavy, 30)
    heavy_results = finish(heavy)
    print(f"loss 30 %: {rounds_per_second(heavy_results):.1f} rounds/s, "
          f"error {worst_error(heavy_results, target):.2e}, "
          f"dual imbalance {probe_imbalance(heavy_results):.1e}")
    # What keeps the optimum under loss: the edge duals stay equal and opposite, so they sum to zero
    # (the probes are one projection of each robot's dual). Measured: 5e-7 of their size after timeouts.
    for results in (clean_results, lossy_results, heavy_results):
        assert probe_imbalance(results) < 1e-4, summary(results)
    # The weights can still carry a timeout's transient at round 100 (a CI run: 3.2e-3 after one
    # timeout at each of two robots, with the duals exact), so at 30 % the bound is looser.
    assert worst_error(heavy_results, target) < 1e-2, summary(heavy_results)


def wait_for_training(team: NetnsTeam, timeout: float = 150.0) -> None:
    """Until every robot's log says its first round started (the node logs it at start-up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all("started training" in team.log(robot) for robot in team.robots):
            return
        time.sleep(0.5)
    pytest.fail("the team did not start training: " + "\n".join(team.log(r) for r in team.robots))


def test_a_cut_off_robot_costs_its_neighbours_one_timeout_and_the_others_none(tmp_path, ros_env, teams):
    robots = [f"robot_{i}" for i in range(5)]  # a ring: robot_0's neighbours are robot_1 and robot_4
    team = make_team(tmp_path, ros_env, robots, rounds=0)
    teams.append(team)
    start(team)
    wait_for_training(team)
    time.sleep(5.0)
    team.cut("robot_0")
    time.sleep(10.0)  # five round timeouts
    team.restore("robot_0")
    time.sleep(5.0)
    team.signal(robots)
    results = finish(team)
    timeouts = {robot: r["timeouts"] for robot, r in results.items()}
    waited = {robot: {j: link["waited_past_timeout"] for j, link in r["links"].items() if link["waited_past_timeout"]}
              for robot, r in results.items()}
    print("\ntimeouts:", timeouts, "rounds:", {robot: r["rounds_done"] for robot, r in results.items()},
          "waited past the timeout for:", waited)
    # robot_0's neighbours wait out one timeout for it, then it is absent (absent_after 1) until it
    # speaks again. robot_2 and robot_3 wait in the next round for robot_1 / robot_4, which send it
    # only after that timeout and their step: they keep waiting, because robot_1 / robot_4 signal
    # that they are alive and still in the earlier round (dinno_ros.round_waiting), so they never
    # time out. Before the signals, they raced the waiting neighbour and sometimes timed out too.
    assert timeouts["robot_2"] == 0 and timeouts["robot_3"] == 0, summary(results)
    assert timeouts["robot_1"] == 1 and timeouts["robot_4"] == 1, summary(results)
    # robot_0 itself loses each neighbour once: one timeout if the cut came between two rounds,
    # two if it had one neighbour's weights of its round already (then the other is missing in
    # that round and the first in the next). Rejoining costs nobody a timeout (a catch-up).
    assert 1 <= timeouts["robot_0"] <= 2, summary(results)
    assert results["robot_1"]["links"]["robot_0"]["missed"] >= 3  # it did miss robot_0's rounds
    assert results["robot_4"]["links"]["robot_0"]["missed"] >= 3


def test_poisoned_and_forged_weights_are_dropped_counted_and_harmless(tmp_path, ros_env, teams):
    team = make_team(tmp_path, ros_env, ROBOTS, rounds=150)
    teams.append(team)
    forged, poisoned = 30, 30
    # The intruder starts first and waits for robot_1's neighbours and a few of its messages.
    team.spawn(None, "intruder", [sys.executable, str(Path(__file__).with_name("netns_attacker.py")),
                                  "--victim", "robot_1", "--readers", "2", "--forged", str(forged),
                                  "--poisoned", str(poisoned), "--key", ros_env["DINNO_TEAM_KEY_FILE"],
                                  "--timeout", "200"])
    start(team)
    results = finish(team)
    assert '"forged": 30' in team.log("intruder"), team.log("intruder")
    for robot in ("robot_0", "robot_2"):  # robot_1's neighbours hear its topic
        drops = results[robot]["links"]["robot_1"]["drops"]
        # Every message counted under its reason, whatever its timing: the tag is checked first,
        # and a message's weights (bounded change) before its round (dinno_ros.exchange), so a
        # poisoned message is out_of_bounds even when it arrives after its round has passed.
        assert drops.get("unauthenticated", 0) == forged, summary(results)
        assert drops.get("out_of_bounds", 0) == poisoned, summary(results)
    # No poisoned vector reached an algorithm (each was dropped), so no robot's weights moved by
    # more than the bound, and the team still reaches the optimum.
    assert worst_error(results, optimum(len(ROBOTS))) < 1e-4, summary(results)
