"""A single-threaded executor that calls a ready subscription or timer straight away.

rclpy's SingleThreadedExecutor (Jazzy, rclpy 7.1) wraps every callback in a Task around a
coroutine, builds a new wait set for every wake through an ExitStack of every handle, and its
handler triggers the executor's own guard condition twice per callback, so each message costs
a second, empty wake. Measured here with a node woken by one topic, that was about 0.2 ms of
CPU a message against 0.13 ms for the wait and the take alone; the graph's Python nodes spend
most of their CPU there (README, "Where the CPU goes").

This executor keeps rclpy's semantics where they matter to a single thread: the same wait
(rcl's wait set, one reused while the entity counts stay the same), callbacks in rclpy's
order (timers, subscriptions, guard conditions, clients, services of each node, after
waitables), a timer re-checked before it is called, a callback group that is busy with a
suspended coroutine left out of the wait, pending tasks resumed before each wait, and an
exception from a callback raised out of `spin_once`. Plain subscription and timer callbacks
are called directly; everything else (an async callback, a client's response, a service, a
guard condition, an action's waitable) goes through rclpy's own handler, as before.

It relies on rclpy's executor internals (`_tasks`, `Task._handler`, `_make_handler`, `_take_*`), which is why
rclpy's version is pinned with the rest of ROS 2; tests/test_lean_executor.py checks the
behaviour each node depends on.
"""
from __future__ import annotations

import inspect
import time

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import InvalidHandle
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor, TimeoutObject
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.subscription import Subscription
from rclpy.utilities import timeout_sec_to_nsec

_MESSAGE_ONLY = Subscription.CallbackType.MessageOnly


def _free(entity) -> bool:
    """Whether the entity may be waited on: not handed to a handler, and its group not busy."""
    if entity._executor_event:
        return False
    group = entity.callback_group
    if type(group) is MutuallyExclusiveCallbackGroup:
        return group._active_entity is None      # only this thread changes it
    return group.can_execute(entity)


class LeanExecutor(SingleThreadedExecutor):
    def __init__(self, *, context=None):
        super().__init__(context=context)
        self._wait_set = None
        self._wait_set_counts = None
        self.waits = 0          # wait-set waits so far, for tests and profiling

    def shutdown(self, timeout_sec=None) -> bool:
        """Stop, and close the coroutine of each task never started (a goal accepted as the graph
        stops): left to the garbage collector, it warns that it was never awaited. A task already
        started is only cancelled, so that none of its code runs after the stop."""
        stopped = super().shutdown(timeout_sec)
        with self._tasks_lock:
            tasks, self._tasks = self._tasks, []
        for task, _entity, _node in tasks:
            handler = task._handler
            if inspect.iscoroutine(handler) and inspect.getcoroutinestate(handler) == inspect.CORO_CREATED:
                handler.close()
            task.cancel()
        return stopped

    def _spin_once_impl(self, timeout_sec=None, wait_condition=lambda: False) -> None:
        self._cb_iter = None          # rclpy's generator is not used; never resume a stale one
        timeout = timeout_sec.timeout if isinstance(timeout_sec, TimeoutObject) else timeout_sec
        timeout_ns = timeout_sec_to_nsec(timeout)
        deadline = None if timeout_ns < 0 else time.monotonic_ns() + timeout_ns
        while not self._is_shutdown and not wait_condition():
            self._resume_tasks()
            if wait_condition():
                return
            wait_ns = -1 if deadline is None else max(0, deadline - time.monotonic_ns())
            if self._wait_and_dispatch(wait_ns):
                return
            if deadline is not None and time.monotonic_ns() >= deadline:
                return

    def _resume_tasks(self) -> None:
        """Resume tasks in progress (coroutines, create_task) before each wait, as rclpy does, and
        again while one finishes (it may have completed what another awaits). A task still
        waiting (the bridge's mission awaits its end for the whole flight) is resumed once."""
        while self._tasks:
            with self._tasks_lock:
                tasks = list(self._tasks)
            finished = False
            try:
                for task, _entity, node in reversed(tasks):
                    if task.executing() or task.done():
                        continue
                    if node is not None and node not in self._nodes:
                        continue
                    task()
                    if task.exception() is not None:
                        raise task.exception()
                    finished = finished or task.done()
            finally:
                with self._tasks_lock:
                    self._tasks = [t for t in self._tasks if not t[0].done() and not t[0].cancelled()]
            if not finished:
                return

    def _wait_and_dispatch(self, wait_ns: int) -> bool:
        """One wait; calls what is ready. Returns whether any callback ran."""
        nodes = self.get_nodes()
        subscriptions, timers, clients, services, guards, waitables = [], [], [], [], [], []
        for node in nodes:
            subscriptions += [e for e in node._subscriptions if _free(e)]
            timers += [e for e in node._timers if _free(e)]
            clients += [e for e in node._clients if _free(e)]
            services += [e for e in node._services if _free(e)]
            for gc in node._guards:
                if _free(gc):
                    if gc._executor_triggered:        # triggered but not handled: keep it ready
                        gc.trigger()
                    guards.append(gc)
            waitables += [w for w in node.waitables if _free(w)]
        own_guards = [g for g in (self._guard, self._sigint_gc) if g is not None]

        entered = []

        def enter(entities, handle_of=lambda e: e.handle):
            kept = []
            for entity in entities:
                handle = handle_of(entity)
                try:
                    handle.__enter__()
                except InvalidHandle:
                    continue
                entered.append(handle)
                kept.append(entity)
            return kept

        try:
            subscriptions, timers, clients, services = (enter(subscriptions), enter(timers),
                                                        enter(clients), enter(services))
            guards, own_guards = enter(guards), enter(own_guards)
            waitables = enter(waitables, handle_of=lambda w: w)
            counts = [len(subscriptions), len(guards) + len(own_guards), len(timers), len(clients),
                      len(services), 0]
            for w in waitables:
                n = w.get_num_entities()
                counts = [counts[0] + n.num_subscriptions, counts[1] + n.num_guard_conditions,
                          counts[2] + n.num_timers, counts[3] + n.num_clients,
                          counts[4] + n.num_services, counts[5] + n.num_events]
            self._context.handle.__enter__()
            entered.append(self._context.handle)
            counts = tuple(counts)
            if counts != self._wait_set_counts:
                self._wait_set = _rclpy.WaitSet(*counts, self._context.handle)
                self._wait_set_counts = counts
            wait_set = self._wait_set
            wait_set.clear_entities()
            for entities, add in ((subscriptions, wait_set.add_subscription), (clients, wait_set.add_client),
                                  (services, wait_set.add_service), (timers, wait_set.add_timer),
                                  (guards + own_guards, wait_set.add_guard_condition)):
                for e in entities:
                    add(e.handle)
            for w in waitables:
                w.add_to_wait_set(wait_set)

            self.waits += 1
            wait_set.wait(wait_ns)
            if self._is_shutdown:
                return False
            if not self._context.ok():
                raise ExternalShutdownException()
            ready_subscriptions = wait_set.get_ready_entities('subscription')
            ready_timers = wait_set.get_ready_entities('timer')
            ready_guards = wait_set.get_ready_entities('guard_condition')
            ready_clients = wait_set.get_ready_entities('client')
            ready_services = wait_set.get_ready_entities('service')
            for gc in guards:
                if gc.handle.pointer in ready_guards:
                    gc._executor_triggered = True
            ready_waitables = [w for w in waitables if w.is_ready(wait_set)]
        finally:
            for handle in reversed(entered):
                handle.__exit__(None, None, None)

        ran = False
        with self._work_tracker:
            for w in ready_waitables:
                if _free(w):
                    ran = True
                    self._through_rclpy(w, self._node_of(w, nodes), self._take_waitable)
            for node in nodes:
                if ready_timers:
                    for tmr in node._timers:
                        if tmr.handle.pointer in ready_timers and _free(tmr):
                            ran = self._call_timer(tmr, node) or ran
                if ready_subscriptions:
                    for sub in node._subscriptions:
                        if sub.handle.pointer in ready_subscriptions and _free(sub):
                            ran = self._call_subscription(sub, node) or ran
                for gc in node._guards:
                    if gc._executor_triggered and _free(gc):
                        ran = True
                        self._through_rclpy(gc, node, self._take_guard_condition)
                if ready_clients:
                    for client in node._clients:
                        if client.handle.pointer in ready_clients and _free(client):
                            ran = True
                            self._through_rclpy(client, node, self._take_client)
                if ready_services:
                    for srv in node._services:
                        if srv.handle.pointer in ready_services and _free(srv):
                            ran = True
                            self._through_rclpy(srv, node, self._take_service)
        return ran

    @staticmethod
    def _plain(entity) -> bool:
        """A callback that is an ordinary function (not async) is called directly."""
        return not inspect.iscoroutinefunction(entity.callback)

    def _call_timer(self, tmr, node) -> bool:
        plain = self._plain(tmr)
        try:
            with tmr.handle:
                if not tmr.handle.is_timer_ready():      # rcl reports a cancelled timer ready
                    return False
                if plain:
                    tmr.handle.call_timer()
        except InvalidHandle:
            return False
        if plain:
            tmr.callback()
        else:
            self._through_rclpy(tmr, node, self._take_timer)
        return True

    def _call_subscription(self, sub, node) -> bool:
        if not self._plain(sub):
            self._through_rclpy(sub, node, self._take_subscription)
            return True
        try:
            with sub.handle:
                taken = sub.handle.take_message(sub.msg_type, sub.raw)
        except InvalidHandle:
            return False
        if taken is None:
            return False
        if sub._callback_type is _MESSAGE_ONLY:
            sub.callback(taken[0])
        else:
            sub.callback(*taken)
        return True

    def _through_rclpy(self, entity, node, take) -> None:
        """rclpy's own handler: a Task that holds the callback group while its coroutine waits."""
        handler = self._make_handler(entity, node, take)
        handler()
        if handler.exception() is not None:
            raise handler.exception()

    @staticmethod
    def _node_of(entity, nodes):
        for node in nodes:
            if entity in node.waitables:
                return node
        return None
