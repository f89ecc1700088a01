"""Replay of a recorded bag in the view page: play/pause and a time slider.

The frames are the bag's full states (FULL_STATE, simulation) when it has them, else its
/joint_states (named 1-dof joints; the rest of the state at the model's defaults), at their
receive times. Seeking to t shows the last frame received at or before t.
"""
import bisect
import dataclasses
import threading
import time

import numpy as np

from ..bags.reader import BagReader
from ..bags.writer import BagError
from ..ros import protocol
from ..sim.observation import JointStates

PLAY_HZ = 30.0   # frames pushed per second of wall time while playing
SLACK = 1e-6     # s: a time this close below a frame's counts as the frame's


@dataclasses.dataclass
class Frames:
    times: np.ndarray    # (T,) s since the first frame, non-decreasing
    states: np.ndarray   # (T, nstate) FULLPHYSICS states
    topic: str           # where they came from

    def index_at(self, t: float) -> int:
        """The last frame at or before t (the first one before the start); within SLACK,
        since a slider's value is a rounded multiple of its step."""
        return max(bisect.bisect_right(self.times.tolist(), t + SLACK) - 1, 0)


def load_frames(bag, task, full_state_topic: str = protocol.FULL_STATE,
                joint_states_topic: str = protocol.JOINT_STATES) -> Frames:
    """The bag's states for `task`'s model; BagError naming the topics when it has neither,
    or when its states do not fit the model."""
    reader = BagReader(bag)
    have = reader.topics()
    times, states = [], []
    if have.get(full_state_topic, {}).get('count'):
        topic = full_state_topic
        nstate, nv = task.layout.size, task.model.nv
        for m in reader.messages([topic], decode=True):
            try:
                full = protocol.unpack_full_state(m.msg.data, nstate, nv, topic)
            except protocol.ProtocolError as e:
                raise BagError(f'{reader.path}: message {m.index} on {e} for task {task.name}: '
                               'recorded with another task?') from None
            times.append(m.log_time)
            states.append(full.state)
    elif have.get(joint_states_topic, {}).get('count'):
        topic = joint_states_topic
        joints = JointStates.of(task)
        for m in reader.messages([topic], decode=True):
            if not set(m.msg.name) & set(joints.names):
                raise BagError(f'{reader.path}: {topic} message {m.index} names none of the '
                               f'{task.name} model\'s joints {joints.names} (it names '
                               f'{list(m.msg.name)}); wrong --task?')
            times.append(m.log_time)
            states.append(joints.to_state(list(m.msg.name), list(m.msg.position),
                                          list(m.msg.velocity)))
    else:
        raise BagError(f'{reader.path} has no states to replay: it lacks both '
                       f'{full_state_topic} (full physics state) and {joint_states_topic} '
                       f'(sensor_msgs/JointState); it has: {", ".join(sorted(have)) or "nothing"}')
    if not states:
        raise BagError(f'{reader.path}: no readable message on {topic}')
    times = (np.array(times, dtype=np.int64) - times[0]) * 1e-9
    return Frames(np.maximum.accumulate(times), np.array(states), topic)


class Replay:
    """Adds play/pause, a time slider and a frame counter to `page` (a ViewPage) and shows
    `frames` on its robot."""

    def __init__(self, page, frames: Frames, bag_name: str = ''):
        self.page, self.frames = page, frames
        self.index, self.time = 0, 0.0   # the frame shown; the replay clock (s)
        self.playing = False
        self.lock = threading.RLock()   # a slider assignment may call back into seek()
        gui = page.server.gui
        duration = float(frames.times[-1])
        steps = np.diff(frames.times)
        step = float(np.median(steps[steps > 0])) if np.any(steps > 0) else 0.01
        with gui.add_folder(f'Replay {bag_name}'.strip(), order=-1):
            self.info = gui.add_markdown('')
            self.play_button = gui.add_button('Play')
            self.slider = gui.add_slider('time (s)', min=0.0, max=max(duration, step),
                                         step=round(step, 6), initial_value=0.0)
        self.play_button.on_click(lambda _: self.toggle())
        self.slider.on_update(lambda _: self.seek(self.slider.value, from_slider=True))
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._play_loop, name='replay', daemon=True)
        self.seek(0.0)
        self.thread.start()

    def toggle(self):
        with self.lock:
            self.playing = not self.playing
            if self.playing and self.index == len(self.frames.times) - 1:
                self.index, self.time = 0, 0.0   # play again from the start
            self.play_button.label = 'Pause' if self.playing else 'Play'

    def seek(self, t: float, from_slider: bool = False):
        """Show the frame at time t (s since the first frame)."""
        with self.lock:
            self.time = float(t)
            self.index = self.frames.index_at(self.time)
            self._show(from_slider)

    def _show(self, from_slider: bool):
        i, frames = self.index, self.frames
        self.page.robot.show_state(frames.states[i])
        if not from_slider:
            self.slider.value = min(self.time, self.slider.max)
        self.info.content = (f'**Frame** {i + 1}/{len(frames.times)}, '
                             f't = {frames.times[i]:.3f} s of {frames.times[-1]:.3f} s  \n'
                             f'**Source:** {frames.topic}')

    def _play_loop(self):
        last = time.monotonic()
        while not self.stopped.wait(1.0 / PLAY_HZ):
            now = time.monotonic()
            with self.lock:
                if self.playing:
                    self.time = min(self.time + now - last, float(self.frames.times[-1]))
                    self.index = self.frames.index_at(self.time)
                    if self.index == len(self.frames.times) - 1:
                        self.playing = False
                        self.play_button.label = 'Play'
                    self._show(False)
            last = now

    def stop(self):
        self.stopped.set()
        self.thread.join(timeout=2.0)
