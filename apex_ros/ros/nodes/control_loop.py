"""A lean wait for a control loop: one node's subscriptions and steady-clock timers, waited on
with one rcl wait set and run in place.

rclpy's SingleThreadedExecutor rebuilds a wait set over every entity, wraps each callback in a
Task and walks a generator per wake-up: 258-336 us of CPU per received message against 84-88
us for this, with the same one-subscription node on the same loaded machine
(experiments/executor_profile/probe.py). It makes the rclpy
calls the executors themselves make (`_rclpy.WaitSet`, `handle.take_message`,
`handle.call_timer`), pinned with the wheel (ros-jazzy-rclpy 7.1.6). For a node without
services, clients, guard conditions, waitables or timers on a ROS (simulated) clock, whose
callbacks take the message only (or nothing) and destroy none of its entities.
"""
import time

from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy


class ControlLoop:
    """`spin_once(timeout_sec)`: wait for `node`'s subscriptions and timers, run what is
    ready (messages first), return. Entities created or destroyed between calls are picked up."""

    def __init__(self, node):
        self.node = node
        self._entities, self._wait_set = None, None

    def spin_once(self, timeout_sec: float):
        subs, timers = tuple(self.node.subscriptions), tuple(self.node.timers)
        if not subs and not timers:  # rcl refuses to wait on an empty wait set
            time.sleep(timeout_sec)
            return
        if (subs, timers) != self._entities:
            self._entities = subs, timers
            self._wait_set = _rclpy.WaitSet(len(subs), 0, len(timers), 0, 0, 0,
                                            self.node.context.handle)
        wait_set = self._wait_set
        wait_set.clear_entities()
        for sub in subs:
            wait_set.add_subscription(sub.handle)
        for timer in timers:
            wait_set.add_timer(timer.handle)
        wait_set.wait(int(timeout_sec * 1e9))
        # Messages first: a timer that judges the state's age (a watchdog) or uses it (a
        # control tick) then sees the newest one.
        for i, sub in enumerate(subs):
            if wait_set.is_ready('subscription', i):
                taken = sub.handle.take_message(sub.msg_type, sub.raw)
                if taken is not None:
                    sub.callback(taken[0])
        for i, timer in enumerate(timers):
            if wait_set.is_ready('timer', i):
                timer.handle.call_timer()
                timer.callback()
