"""Weight messages: encode/decode cost, latency between two processes, and a 3-robot team's round time.

Run by hand (prints a table; the ratios are what to read, since the machine may be shared):

    .venv/bin/python bench/bench_messages.py [--quick] [--skip-latency] [--skip-team]

1. Codec: packing ``[1, n]`` float32 weights into a ``dinno_msgs/WeightUpdate`` (float32 and
   float16), reading them back, the receiver's full validation (``RoundExchange.receive``), and
   rclpy's own (de)serialization of the message, each next to a plain numpy copy of the same
   bytes measured in the same loop (alternating), for 28,440 (the paper's MNIST CNN) and
   1,000,000 values.
2. Latency: one-way time of a WeightUpdate between two processes (ping-pong with an echo
   process, half the round trip), with the robot node's QoS (RELIABLE, TRANSIENT_LOCAL,
   KEEP_LAST 2), default Fast DDS transports.
3. Team: three robot processes (``dinno_ros.robot_node``) on a complete graph; rounds per second
   read from their ``dinno/status`` topics after a warm-up, for the convex task (5 parameters:
   the protocol's own overhead) and MNIST (28,440 parameters, digits data, B=2 Adam steps).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

# Local, isolated defaults when run by hand (kept if already set; children inherit them).
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(50 + os.getpid() % 50))
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="dinno-bench-log-"))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from dinno_ros.exchange import RoundExchange  # noqa: E402
from dinno_ros.weights_codec import ENCODING_FLOAT16, ENCODING_FLOAT32, from_message, to_message  # noqa: E402

SIZES = (28_440, 1_000_000)
WEIGHTS_QOS_DEPTH = 2


def timed(fn, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def side_by_side(candidates: dict[str, callable], repeat: int, blocks: int = 5) -> dict[str, float]:
    """Median seconds of each candidate, measured in alternating blocks (load hits all alike)."""
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for fn in candidates.values():  # warm-up
        fn()
    for _ in range(blocks):
        for name, fn in candidates.items():
            samples[name] += timed(fn, max(repeat // blocks, 1))
    return {name: statistics.median(values) for name, values in samples.items()}


def bench_codec(repeat: int) -> list[tuple[str, ...]]:
    from rclpy.serialization import deserialize_message, serialize_message

    from dinno_msgs.msg import WeightUpdate

    rows = []
    for n in SIZES:
        values = np.random.default_rng(0).standard_normal((1, n)).astype(np.float32)
        target = np.empty_like(values)
        msg32 = to_message(values, sender="robot_1", round_index=3, fingerprint=1, degree=2)
        msg16 = to_message(values, sender="robot_1", round_index=3, fingerprint=1, degree=2, encoding=ENCODING_FLOAT16)
        wire = serialize_message(msg32)
        exchange = RoundExchange("robot_0", ["robot_0", "robot_1"], fingerprint=1, num_params=n, neighbours=["robot_1"],
                                 max_round_lead=10**9)
        result = side_by_side({
            "numpy copy (baseline)": lambda: np.copyto(target, values),
            "encode float32": lambda: to_message(values, sender="robot_1", round_index=3, fingerprint=1, degree=2),
            "encode float16": lambda: to_message(values, sender="robot_1", round_index=3, fingerprint=1, degree=2,
                                                 encoding=ENCODING_FLOAT16),
            "decode float32 (view)": lambda: from_message(msg32),
            "decode float16": lambda: from_message(msg16),
            "validate+store (receive)": lambda: exchange.receive(msg32, via="robot_1"),
            "rclpy serialize": lambda: serialize_message(msg32),
            "rclpy deserialize": lambda: deserialize_message(wire, WeightUpdate),
        }, repeat if n < 100_000 else max(repeat // 10, 10))
        base = result["numpy copy (baseline)"]
        for name, seconds in result.items():
            rate = "(no copy)" if "view" in name else f"{4 * n / seconds / 1e9:.2f}"
            rows.append((f"{n:,}", name, f"{seconds * 1e3:.4f}", f"{seconds / base:.1f}x", rate))
    assert ENCODING_FLOAT32 == WeightUpdate.ENCODING_FLOAT32
    return rows


# ------------------------------------------------------------------------------ latency


def _qos():
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                      history=HistoryPolicy.KEEP_LAST, depth=WEIGHTS_QOS_DEPTH)


def echo_main() -> None:
    """The other process: republish every ping as a pong."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    from dinno_msgs.msg import WeightUpdate

    rclpy.init()
    node = rclpy.create_node("bench_echo")
    pong = node.create_publisher(WeightUpdate, "/bench/pong", _qos())
    node.create_subscription(WeightUpdate, "/bench/ping", pong.publish, _qos())
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def bench_latency(pings: int) -> list[tuple[str, ...]]:
    import subprocess

    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from dinno_msgs.msg import WeightUpdate

    echo = subprocess.Popen([sys.executable, __file__, "--echo"], env=dict(os.environ))
    rclpy.init()
    node = rclpy.create_node("bench_ping")
    ping = node.create_publisher(WeightUpdate, "/bench/ping", _qos())
    arrived = threading.Condition()
    last = {"round": -1}

    def on_pong(msg):
        with arrived:
            last["round"] = msg.round
            arrived.notify_all()

    node.create_subscription(WeightUpdate, "/bench/pong", on_pong, _qos())
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    rows = []
    try:
        deadline = time.monotonic() + 60
        while (ping.get_subscription_count() == 0 or node.count_publishers("/bench/pong") == 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        counter = 0
        for n in SIZES:
            msg = to_message(np.ones((1, n), np.float32), sender="a", round_index=0, fingerprint=1, degree=1)
            trips = []
            for i in range(pings + 5):
                counter += 1
                msg.round = counter
                start = time.perf_counter()
                ping.publish(msg)
                with arrived:
                    if not arrived.wait_for(lambda: last["round"] == counter, timeout=10):
                        raise RuntimeError(f"no pong for ping {counter} ({n} values)")
                if i >= 5:  # warm-up pings excluded
                    trips.append(time.perf_counter() - start)
            one_way = [t / 2 for t in trips]
            rows.append((f"{n:,}", f"{statistics.median(one_way) * 1e3:.2f}",
                         f"{np.percentile(one_way, 90) * 1e3:.2f}", f"{4 * n / statistics.median(one_way) / 1e6:.0f}"))
    finally:
        executor.shutdown()
        spinner.join(timeout=10)  # a spin thread alive at exit aborts the interpreter
        node.destroy_node()
        rclpy.try_shutdown()
        echo.terminate()
        echo.wait(timeout=30)
    return rows


# --------------------------------------------------------------------------------- team


def bench_team(name: str, algorithm: dict, task: dict, rounds: int, warmup: int) -> tuple[str, ...]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from dinno_msgs.msg import RobotStatus
    from dinno_ros.message_auth import write_team_key
    from dinno_ros.process_spec import process_command, write_params_files
    from dinno_ros.supervisor import start_process, stop_processes
    from dinno_ros.team_spec import hardware_robot_process

    team = ["robot_0", "robot_1", "robot_2"]
    workdir = Path(tempfile.mkdtemp(prefix="dinno-bench-team-"))
    shared = {"rounds": rounds, "round_timeout": 10.0, "startup_timeout": 120.0,
              "results_path": str(workdir / "{robot}.json"), "algorithm": algorithm, "task": task,
              "team_key_file": str(write_team_key(workdir / "team.key"))}
    specs = [hardware_robot_process(r, team, neighbours=[o for o in team if o != r], parameters=shared) for r in team]
    params = write_params_files(specs, workdir / "params")
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("bench_team_monitor", context=context)
    seen: dict[str, dict[int, float]] = {r: {} for r in team}

    def on_status(robot, msg):
        seen[robot][int(msg.round)] = time.monotonic()

    for robot in team:
        node.create_subscription(RobotStatus, f"/{robot}/dinno/status", lambda m, r=robot: on_status(r, m), 100)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    processes = [start_process(process_command(spec, sys.executable, params[spec.key]), log_path=workdir / f"{spec.key}.log")
                 for spec in specs]
    try:
        codes = [p.wait(timeout=600) for p in processes]
    finally:
        stop_processes(processes)
        executor.shutdown()
        spinner.join(timeout=10)
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    if any(codes):
        raise RuntimeError(f"{name}: robots exited with {codes}; logs in {workdir}")
    # Rounds per second of the slowest robot between the warm-up round and the last round it reported.
    rates = []
    for robot in team:
        last = max(seen[robot])
        rates.append((last - warmup) / (seen[robot][last] - seen[robot][warmup]))
    rate = min(rates)
    return (name, f"{rounds - warmup}", f"{rate:.1f}", f"{1e3 / rate:.1f}")


def print_table(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and rounds")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-team", action="store_true")
    parser.add_argument("--echo", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo:
        echo_main()
        return
    print(f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']} "
          f"ROS_AUTOMATIC_DISCOVERY_RANGE={os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE']} cpus={os.cpu_count()} "
          f"load={os.getloadavg()[0]:.1f}")
    print_table("1. WeightUpdate codec, one [1, n] vector (median per call; ratio to a numpy copy of the same bytes)",
                ("values", "operation", "ms", "vs copy", "GB/s"), bench_codec(50 if args.quick else 300))
    if not args.skip_latency:
        print_table("2. WeightUpdate between two processes (one way = half the ping-pong round trip)",
                    ("values", "median ms", "p90 ms", "MB/s"), bench_latency(20 if args.quick else 100))
    if not args.skip_team:
        quick = args.quick
        convex = bench_team(
            "convex (5 params), DiNNO 5 SGD steps", {"kind": "dinno", "rho_init": 0.5, "primal_steps": 5,
                                                      "batch_size": 0, "optimizer": {"name": "sgd"},
                                                      "lr": {"kind": "constant", "start": 0.07}},
            {"name": "linear_regression"}, rounds=100 if quick else 200, warmup=20)
        mnist = bench_team(
            "MNIST CNN (28,440 params), DiNNO B=2", {"kind": "dinno", "rho_init": 0.5, "primal_steps": 2,
                                                    "batch_size": 64},
            {"name": "mnist", "source": "digits"}, rounds=40 if quick else 100, warmup=10)
        print_table("3. Three robot processes, complete graph (slowest robot)",
                    ("team", "rounds timed", "rounds/s", "ms/round"), [convex, mnist])


if __name__ == "__main__":
    main()
