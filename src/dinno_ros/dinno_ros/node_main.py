"""Start-up and tear-down shared by the ``main()`` of every dinno_ros node executable."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import threading

import rclpy
from rclpy.executors import Executor, ExternalShutdownException
from rclpy.node import Node

from dinno_core.config import ConfigError

NodeT = TypeVar("NodeT", bound=Node)


def init_node(factory: Callable[[], NodeT], program: str, argv: list[str]) -> NodeT | None:
    """``rclpy.init`` and build the node; on invalid parameters print every problem, shut rclpy
    down and return None (the caller exits with status 2 before anything starts)."""
    rclpy.init(args=argv)
    try:
        return factory()
    except ConfigError as error:
        print(f"{program}: invalid parameters:\n{error}", file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return None


def tear_down(executor: Executor, node: Node) -> None:
    """Remove and destroy the node, then shut rclpy down. SIGINT/SIGTERM may already have shut
    the context down, which makes the first two fail: that is a normal stop, not an error."""
    try:
        executor.remove_node(node)
        node.destroy_node()
    except Exception:  # noqa: BLE001
        if rclpy.ok():
            raise
    rclpy.try_shutdown()


def spin_until(executor: Executor, done: threading.Event) -> bool:
    """Serve callbacks until ``done`` is set; True if Ctrl-C / SIGTERM / shutdown ended it first."""
    try:
        while not done.is_set():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        return True
    except Exception:  # noqa: BLE001 - a wait racing SIGINT/SIGTERM's shutdown raises RCLError
        if rclpy.ok():
            raise
        return True
    return False
