"""The `main` of every dfr node: init, spin, and an orderly shutdown on Ctrl-C or SIGTERM."""
from __future__ import annotations

import signal
import sys

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.signals import SignalHandlerOptions

from dfr_common.ros.lean_executor import LeanExecutor


def make_executor(context=None):
    """The executor every dfr node and in-process test graph spins on.

    Not rclpy's EventsExecutor, though it dispatches messages faster: on sim time (rclpy
    7.1, Jazzy) it runs a timer several times in a burst at one clock value and then
    skips the periods it ran ahead, so a 10 Hz setpoint stream arrives in clumps with
    half-second gaps. The simulator then holds sim time for a stream that looks late, and
    the timer, waiting for a time that never comes, stays silent until the hold gives up.
    LeanExecutor waits as rclpy's SingleThreadedExecutor does, on rcl's wait set, and calls
    plain callbacks directly (dfr_common.ros.lean_executor says why).
    """
    return LeanExecutor(context=context)


def run(make_node, args=None) -> int:
    """Spin the node `make_node()` builds (or the nodes, where it builds a list: several in one
    process, on one executor) until Ctrl-C, SIGTERM, an rclpy shutdown, or a node sets
    `finished`; returns the first non-zero `exit_code` a node set (0 if none).

    rclpy's own signal handlers would shut the context down at once, so a node could
    no longer log or publish its last words, and an exception raised by a signal in
    the middle of a C call tears messages apart. Here the signals only set a flag;
    the spin loop wakes at least every 0.1 s to see it, and the node's `on_shutdown`
    runs while the context is still valid.
    """
    name = getattr(make_node, "__name__", "node")
    stop = []
    previous = {sig: signal.signal(sig, lambda *_: stop.append(True)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except rclpy_implementation.RCLError as err:
        # ROS itself refused: bad --ros-args, or DDS security enforced without this node's enclave.
        print(f"{name}: cannot start: {err}", file=sys.stderr, flush=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        return 2
    nodes = []
    exit_code = 0
    try:
        try:
            made = make_node()
        except (ValueError, OSError, rclpy_implementation.RCLError) as err:
            # A bad parameter, fleet or scenario file, or a participant the middleware would not create: say
            # what is wrong in one line, no traceback.
            print(f"{name}: cannot start: {err}", file=sys.stderr, flush=True)
            return 2
        nodes = list(made) if isinstance(made, (list, tuple)) else [made]
        executor = make_executor()
        for node in nodes:
            executor.add_node(node)
        while rclpy.ok() and not stop and not any(getattr(node, "finished", False) for node in nodes):
            executor.spin_once(timeout_sec=0.1)
        exit_code = next((code for code in (getattr(node, "exit_code", 0) for node in nodes) if code), 0)
    except ExternalShutdownException:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for node in nodes:
            closing = getattr(node, "on_shutdown", None)
            if closing is not None and rclpy.ok():
                closing()
            node.destroy_node()
        rclpy.try_shutdown()
    return exit_code
