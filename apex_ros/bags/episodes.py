"""Episodes of MuJoCo states rebuilt from a bag, ready to be relabeled by the expert.

From the full-state topic (simulation; apex_ros.ros.protocol.FULL_STATE): every message carries
(episode, step, state, warmstart). An episode is the run of one episode id; states are
taken in file order, a repeated (episode, step) (the simulation re-sends an unanswered
state) is kept once, a step that is missing ends the episode there (reported), and the
terminal state (step == task.episode_steps, no action follows it) is left out.

From /joint_states (a robot): positions and velocities are mapped to the model's hinge and
slide joints by name; the state coordinates the task's inputs fill (Task.inputs: an object's
pose, a goal; apex_ros.deploy.inputs) come from the latest message on each input's topic
(`input_topics` {name: topic} when remapped); the rest keeps the model's defaults (the task's
initial extra state). As the executor would, a joint state is skipped while an input has no
message yet, its latest is older than its max_age (receive times), in another frame than
declared or non-finite (each reported). Time is the header stamp (the receive time if no
message has a stamp). Episode boundary rule: a stamp going backwards (a simulation reset)
or a gap longer than `episode_gap` seconds (the robot was stopped) starts a new episode; both
are reported. Within an episode the first sample at or after each control tick (task.dt) is
kept, and runs longer than task.episode_steps are cut into segments of that length (each
relabeled with a freshly reset planner); segments of fewer than 2 states (a lone final
state) are dropped.
"""
import dataclasses

import mujoco
import numpy as np

from ..deploy.inputs import check_inputs, message_values
from ..ros import protocol
from ..sim.observation import ONE_DOF, JointStates, Observation
from .reader import BagReader
from .writer import BagError

MIN_STATES = 2
FREE = int(mujoco.mjtJoint.mjJNT_FREE)


@dataclasses.dataclass
class RecordedEpisode:
    states: np.ndarray              # (T, nstate)
    warmstarts: np.ndarray | None   # (T, nv), full-state source only
    source: dict                    # provenance: bag, topic, episode, stamps, files


def load_episodes(reader: BagReader, task, source: str = 'auto',
                  full_state_topic: str = protocol.FULL_STATE,
                  joint_states_topic: str = protocol.JOINT_STATES,
                  episode_gap: float = 1.0, ignore_joints=(), input_topics=None):
    """-> (episodes [RecordedEpisode], notes [str]) from one bag."""
    if source not in ('auto', 'full_state', 'joint_states'):
        raise BagError(f"state source: 'auto', 'full_state' or 'joint_states', got {source!r}")
    have = reader.topics()
    if source == 'auto':
        if have.get(full_state_topic, {}).get('count'):
            source = 'full_state'
        elif have.get(joint_states_topic, {}).get('count'):
            source = 'joint_states'
        else:
            raise BagError(
                f'{reader.path} lacks the topics states are rebuilt from: {full_state_topic} '
                f'(full physics state, simulation) or {joint_states_topic} '
                f'(sensor_msgs/JointState); it has: {", ".join(sorted(have)) or "no topics"}')
    if source == 'full_state':
        reader.require_topics({full_state_topic: 'full physics state'})
        return FullStateEpisodes(reader, task, full_state_topic).load()
    return JointStateEpisodes(reader, task, joint_states_topic, episode_gap,
                              ignore_joints, input_topics).load()


class FullStateEpisodes:
    def __init__(self, reader, task, topic):
        self.reader, self.task, self.topic = reader, task, topic
        self.nstate, self.nv = task.layout.size, task.model.nv
        self.notes = []

    def load(self):
        segments, current = [], {}    # current: episode id -> open segment
        duplicates = 0
        for m in self.reader.messages([self.topic], decode=True):
            try:
                full = protocol.unpack_full_state(m.msg.data, self.nstate, self.nv, self.topic)
            except protocol.ProtocolError as e:
                raise BagError(f'{self.reader.path}: message {m.index} on {e} for task '
                               f'{self.task.name}: recorded with another task or model?'
                               ) from None
            episode, step, state, ws = full.episode, full.step, full.state, full.warmstart
            seg = current.get(episode)
            restarted = seg is not None and step == 0 and (
                seg['ended'] or (seg['steps'] and seg['steps'][-1] > 0))
            if seg is None or restarted:   # restarted: a new simulation reuses the id
                seg = current[episode] = self._new_segment(episode, m)
                segments.append(seg)
            if seg['ended'] or step >= self.task.episode_steps:
                continue
            last = seg['steps'][-1] if seg['steps'] else step - 1   # may start mid-episode
            if step == last:
                duplicates += 1
                continue
            if step != last + 1:
                what = 'missing' if step > last + 1 else f'out of order (after step {last})'
                self.notes.append(f'episode {episode}: step {min(step, last + 1)} {what}; '
                                  f'kept steps 0-{last}, dropped the rest')
                seg['ended'] = True
                continue
            seg['steps'].append(step)
            seg['states'].append(state)
            seg['warmstarts'].append(ws)
            seg['log_times'].append(m.log_time)
            seg['files'].add(m.file)
        if duplicates:
            self.notes.append(f'{duplicates} repeated {self.topic} message(s) (a state re-sent '
                              'while no command came) kept once')
        episodes = [self._episode(s) for s in segments if s['states']]
        return episodes, self.notes

    def _new_segment(self, episode, m):
        return {'episode': episode, 'steps': [], 'states': [], 'warmstarts': [],
                'log_times': [], 'files': {m.file}, 'ended': False}

    def _episode(self, seg):
        return RecordedEpisode(
            np.array(seg['states']), np.array(seg['warmstarts']),
            {'bag': str(self.reader.path), 'topic': self.topic, 'episode': seg['episode'],
             'steps': [seg['steps'][0], seg['steps'][-1]], 'files': sorted(seg['files']),
             'log_times_ns': seg['log_times']})


class JointStateEpisodes:
    def __init__(self, reader, task, topic, episode_gap, ignore_joints, input_topics=None):
        self.reader, self.task, self.topic = reader, task, topic
        self.gap_ns = int(episode_gap * 1e9)
        self.dt_ns = int(round(task.dt * 1e9))
        self.ignore = set(ignore_joints)
        joints = JointStates.of(task)
        self.columns, self.default = joints.columns, joints.default_state
        topics = input_topics or {}
        unknown = sorted(set(topics) - {spec.name for spec in task.inputs()})
        if unknown:
            raise BagError(f'input topic given for {unknown}: task {task.name} declares inputs '
                           f'{[spec.name for spec in task.inputs()]}')
        # topic -> (spec, state columns it fills); inputs carrying site positions are
        # functions of the state, not parts of it
        self.extra = {topics.get(spec.name, spec.topic):
                      (spec, Observation(task.model, spec.fills, task.layout).columns)
                      for spec in check_inputs(list(task.inputs()), f'task {task.name}: inputs')
                      if spec.fills_state}
        self.notes = []
        self._names, self._index = None, None
        self._check_model_joints()

    def _check_model_joints(self):
        m, layout = self.task.model, self.task.layout
        filled = {int(c) for _, columns in self.extra.values() for c in columns}
        other, still = [], []
        for j in range(m.njnt):
            if int(m.jnt_type[j]) in ONE_DOF:
                continue
            start = layout.qpos.start + m.jnt_qposadr[j]
            qpos = range(start, start + (7 if m.jnt_type[j] == FREE else 4))
            if not filled.issuperset(qpos):
                other.append(m.joint(j).name)
            elif layout.qvel.start + m.jnt_dofadr[j] not in filled:
                still.append(m.joint(j).name)
        if other:
            raise BagError(
                f'task {self.task.name} has joints {other} (free/ball) that '
                'sensor_msgs/JointState cannot carry and no declared input (Task.inputs) fills '
                'their positions; record the full-state topic to relabel it')
        if still:
            self.notes.append(f'velocities of {still} are not recorded (their inputs carry '
                              'poses): taken as 0')

    def _map_names(self, names, m):
        names = tuple(names)
        if names == self._names:
            return self._index
        unknown = [n for n in names if n not in self.columns and n not in self.ignore]
        if unknown:
            raise BagError(
                f'{self.reader.path}: {self.topic} message {m.index} names joints the model of '
                f'{self.task.name} lacks: {unknown} (model joints: {sorted(self.columns)}); '
                'wrong task or robot? (--ignore-joint NAME drops a joint)')
        missing = [n for n in self.columns if n not in names]
        if missing:
            raise BagError(f'{self.reader.path}: {self.topic} message {m.index} lacks joints '
                           f'{missing} of the {self.task.name} model (it names {list(names)})')
        self._names = names
        self._index = [(i, *self.columns[n]) for i, n in enumerate(names) if n in self.columns]
        return self._index

    def _state(self, msg, m):
        index = self._map_names(msg.name, m)
        n = len(msg.name)
        if len(msg.position) != n or len(msg.velocity) != n:
            raise BagError(f'{self.reader.path}: {self.topic} message {m.index} has {n} names, '
                           f'{len(msg.position)} positions, {len(msg.velocity)} velocities; '
                           'relabeling needs a position and a velocity for every joint')
        state = self.default.copy()
        for i, qpos_col, qvel_col in index:
            state[qpos_col] = msg.position[i]
            state[qvel_col] = msg.velocity[i]
        return state

    def _input(self, m):
        """-> (log time, values) of an input message, or (None, why) if it is unusable."""
        spec, _ = self.extra[m.topic]
        values = message_values(spec, m.msg)
        if m.msg.header.frame_id != spec.frame:
            return None, f'{spec.name}: frame_id {m.msg.header.frame_id!r}, not {spec.frame!r}'
        if not np.all(np.isfinite(values)):
            return None, f'{spec.name}: non-finite values'
        return m.log_time, values

    def load(self):
        needed = {self.topic: 'sensor_msgs/JointState of the robot'}
        needed.update({t: f'task {self.task.name} needs it to rebuild its state (input '
                          f'{spec.name})' for t, (spec, _) in self.extra.items()})
        self.reader.require_topics(needed)
        latest, samples, skipped = {}, [], {}
        for m in self.reader.messages([self.topic, *self.extra], decode=True):
            if m.topic != self.topic:
                latest[m.topic] = self._input(m)
                continue
            why = self._unusable(latest, m.log_time)
            if why is None:
                samples.append((m, {t: values for t, (_, values) in latest.items()}))
            else:
                skipped[why] = skipped.get(why, 0) + 1
        stamps = [m.msg.header.stamp.sec * 1_000_000_000 + m.msg.header.stamp.nanosec
                  for m, _ in samples]
        if not any(stamps):   # a publisher that leaves the stamps unset
            stamps = [m.log_time for m, _ in samples]
            self.notes.append(f'{self.topic} has no header stamps; using receive times')
        runs, run, prev_stamp = [], None, None
        for (m, extras), stamp in zip(samples, stamps):
            if prev_stamp is not None and stamp == prev_stamp:
                continue   # the same state sent again
            if prev_stamp is None or stamp < prev_stamp or stamp - prev_stamp > self.gap_ns:
                if prev_stamp is not None:
                    why = ('stamp went back' if stamp < prev_stamp else 'gap of')
                    self.notes.append(
                        f'episode boundary at {self.topic} message {m.index}: {why} '
                        f'{abs(stamp - prev_stamp) * 1e-9:.3f} s')
                run = {'t0': stamp, 'last_tick': -1, 'states': [], 'stamps': [],
                       'log_times': [], 'files': set(), 'skipped_ticks': 0}
                runs.append(run)
            prev_stamp = stamp
            tick = (stamp - run['t0'] + self.dt_ns // 1000) // self.dt_ns
            if tick <= run['last_tick']:
                continue   # faster than the control rate: keep the first sample per tick
            state = self._state(m.msg, m)
            for t, (_, columns) in self.extra.items():
                state[columns] = extras[t]
            state[self.task.layout.time] = (stamp - run['t0']) * 1e-9
            run['skipped_ticks'] += tick - run['last_tick'] - 1
            run['last_tick'] = tick
            run['states'].append(state)
            run['stamps'].append(stamp)
            run['log_times'].append(m.log_time)
            run['files'].add(m.file)
        for why, count in skipped.items():
            self.notes.append(f'{count} joint state(s) skipped: input {why}')
        return self._segments(runs), self.notes

    def _unusable(self, latest, log_time):
        """Why the inputs cannot complete a state at `log_time`, or None."""
        for t, (spec, _) in self.extra.items():
            got = latest.get(t)
            if got is None:
                return f'{spec.name}: no message yet on {t}'
            if got[0] is None:
                return got[1]
            if spec.max_age and log_time - got[0] > spec.max_age * 1e9:
                return f'{spec.name}: older than its max_age {spec.max_age:g} s'
        return None

    def _segments(self, runs):
        episodes, dropped = [], 0
        length = self.task.episode_steps
        for r, run in enumerate(runs):
            if run['skipped_ticks']:
                self.notes.append(f'run {r}: {run["skipped_ticks"]} control tick(s) without a '
                                  'joint state (lost messages or a slow publisher)')
            for start in range(0, len(run['states']), length):
                sl = slice(start, start + length)
                if len(run['states'][sl]) < MIN_STATES:
                    dropped += len(run['states'][sl])
                    continue
                episodes.append(RecordedEpisode(
                    np.array(run['states'][sl]), None,
                    {'bag': str(self.reader.path), 'topic': self.topic, 'episode': r,
                     'segment': start // length, 'files': sorted(run['files']),
                     'stamps_ns': run['stamps'][sl], 'log_times_ns': run['log_times'][sl]}))
        if dropped:
            self.notes.append(f'{dropped} state(s) in segments shorter than {MIN_STATES} '
                              'dropped (e.g. the final state after the last action)')
        return episodes
