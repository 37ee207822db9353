"""Start-up and tear-down shared by the ``main()`` of every dinno_ros node executable."""

from __future__ import annotations

import faulthandler
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import rclpy
from rclpy.exceptions import InvalidNamespaceException, InvalidNodeNameException
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from dinno_core.config import ConfigError

NodeT = TypeVar("NodeT", bound=Node)
_holding = ""  # the program name once hold_signals_while_saving ran


def _rcl_message(error: Exception) -> str:
    """rcl's one-line reason, without its C source locations."""
    text = str(error).removeprefix("failed to initialize rcl: ")
    return re.sub(r"(, )?at /\S+:\d+", "", text).strip().rstrip(",")


def init_node(factory: Callable[[], NodeT], program: str, argv: list[str]) -> NodeT | None:
    """``rclpy.init`` and build the node; on invalid ROS arguments (a bad remap, a missing or
    unparsable ``--params-file``, a bad namespace) or invalid parameters print every problem,
    shut rclpy down and return None (the caller exits with status 2 before anything starts).
    Ctrl-C during start-up exits with 130, quietly."""
    # A start-up guard (robot_node's __main__) may have replaced SIGINT's handler; rclpy chains to
    # the handler it finds, which must raise KeyboardInterrupt for a normal stop.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        rclpy.init(args=argv)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as error:  # noqa: BLE001 - rcl's RCLError: the command line is not valid
        print(f"{program}: invalid ROS arguments: {_rcl_message(error)}", file=sys.stderr, flush=True)
        return None
    try:
        return factory()
    except ConfigError as error:
        print(f"{program}: invalid parameters:\n{error}", file=sys.stderr, flush=True)
    except (InvalidNamespaceException, InvalidNodeNameException) as error:
        print(f"{program}: invalid node name or namespace: {error}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        rclpy.try_shutdown()
        raise SystemExit(130) from None
    except Exception:  # noqa: BLE001 - a SIGINT/SIGTERM during start-up shuts the context down under us
        if rclpy.ok():
            raise
        raise SystemExit(130) from None
    rclpy.try_shutdown()
    return None


TEAR_DOWN_LIMIT_S = 30.0
"""How long a node may take to flush, destroy its DDS entities and exit once everything is saved."""


def _exit_if_stuck(program: str, exit_code: int, seconds: float) -> None:
    """Exit with ``exit_code`` if the tear-down is still running after ``seconds``.

    Everything is saved when this is armed, so a tear-down stuck in the middleware (DDS
    destruction hangs are a known class of bugs, e.g. ros2/rclpy#944, ros2/launch#89) must not keep
    a robot's process alive: the thread stacks go to stderr and the process exits. faulthandler's
    own watchdog thread, which needs no GIL, is the last resort if Python itself cannot run."""
    def expire() -> None:
        print(f"{program}: tear-down did not finish within {seconds:.0f} s (everything was saved); "
              f"exiting with status {exit_code}. Where it was:", file=sys.stderr, flush=True)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        os._exit(exit_code)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    faulthandler.dump_traceback_later(seconds + 10.0, exit=True, file=sys.stderr)


def tear_down(executor: Executor, node: Node, exit_code: int = 0, before: Callable[[], object] | None = None,
              limit_s: float = TEAR_DOWN_LIMIT_S) -> None:
    """Run ``before`` (e.g. waiting for the last message's acknowledgements), remove and destroy the
    node, then shut rclpy down, all within ``limit_s`` (:func:`_exit_if_stuck`). SIGINT/SIGTERM may
    already have shut the context down, which makes the removal fail: a normal stop, not an error."""
    _exit_if_stuck(node.get_name(), exit_code, limit_s)
    if before is not None and rclpy.ok():
        before()
    try:
        executor.remove_node(node)
        node.destroy_node()
    except Exception:  # noqa: BLE001
        if rclpy.ok():
            raise
    rclpy.try_shutdown()  # restores the signal handlers rclpy found at init
    if _holding:
        # Everything is saved; only the interpreter's exit is left. Python resets Python-level
        # handlers to SIG_DFL while it finalizes (a late SIGINT there killed the process: exit
        # status 130 after a clean stop), but leaves ignored signals ignored.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)


def spin_until(executor: Executor, done: threading.Event, program: str = "") -> bool:
    """Serve callbacks until ``done`` is set; True if Ctrl-C / SIGTERM / shutdown ended it first.

    With ``program``, further SIGINT/SIGTERM are held from the moment the first one stopped the
    spinning (:func:`hold_signals_while_saving`): the caller is about to save its results."""
    try:
        while not done.is_set():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        if program:
            hold_signals_while_saving(program)
        return True
    except Exception:  # noqa: BLE001 - a wait or take racing SIGINT/SIGTERM's shutdown raises
        if program:
            hold_signals_while_saving(program)
        if not _shut_down_soon():
            raise
        return True
    return False


def _shut_down_soon(grace: float = 1.0) -> bool:
    """Whether the context is (or within ``grace`` seconds becomes) shut down: an error raised by a
    take or wait at the moment SIGINT/SIGTERM shuts the context down (seen: a message take failing
    to convert while the shutdown ran) is a normal stop; an error with the context alive is not."""
    deadline = time.monotonic() + grace
    while rclpy.ok():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def spin_node(node: Node, program: str, finish: Callable[[], None]) -> int:
    """Serve ``node``'s callbacks until Ctrl-C / SIGTERM / shutdown, then run ``finish`` (save,
    report) with further signals held, and tear down. Exit status 0, or 1 if a callback failed.

    SIGINT/SIGTERM shut the context down; a timer callback publishing at that moment raises
    ("publisher's context is invalid"): that is a normal stop, anything else is not."""
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    failed = False
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as error:  # noqa: BLE001
        if node.context.ok():
            failed = True
            print(f"{program}: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
    finally:
        hold_signals_while_saving(program)
        try:
            finish()
        finally:
            tear_down(executor, node, exit_code=1 if failed else 0)
    return 1 if failed else 0


def hold_signals_while_saving(program: str) -> None:
    """From now on SIGINT and SIGTERM print one line instead of interrupting: the node is
    stopping and saving its results/checkpoint. Called once the first stop request arrived.

    A second SIGINT is normal (Ctrl-C twice; ``ros2 launch`` forwarding SIGINT to a process
    that already got it from the terminal's process group); Python would raise
    KeyboardInterrupt inside the saving and lose the results. SIGKILL still ends the process
    (launch and dinno-team escalate to it after their timeouts)."""

    global _holding
    _holding = program

    def note(signum: int, _frame: object) -> None:
        print(f"{program}: {signal.Signals(signum).name} again: already stopping, saving the results first",
              file=sys.stderr, flush=True)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, note)
