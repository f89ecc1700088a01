"""The page `apex-ros view` serves: a viser server on localhost with the task's MuJoCo scene,
the planner's predicted plan, live plots and the run's status.

No ROS here: the viz node (apex_ros.ros.nodes.viz_node) and the bag replay (replay.py) feed
a ViewPage through its on_* methods, from any thread; refresh() (run by start() at
REFRESH_HZ in a thread of its own) pushes what changed to the browsers. The scene moves at
the refresh rate whatever the state rate; the plots are redrawn at most PLOT_HZ.

What is shown:
- `/robot/<body>`: the model's bodies posed from the latest full state, else from the
  latest /joint_states (named 1-dof joints; the rest at the model's defaults);
- `/plan/ghost/<body>`: a translucent copy of the robot at the end of the planner's predicted
  horizon, and `/plan/paths`: each moving body's centre of mass along the prediction;
- plots: episode returns in order (each labelled in the status with the node that drove it),
  expert vs policy return per finished APEX iteration, the command topic's rate (from its
  publisher's sequence numbers) and the state-to-command latency (sampled: a command's
  source timestamp minus that of the latest state before it), the adaptive lambda_j and the
  planning time per step;
- a status line: which node drives the simulation, APEX iteration and phase, latest values.
"""
import collections
import socket
import threading
import time

import numpy as np
import viser

from ..errors import ApexError
from ..ros import protocol
from ..sim.observation import JointStates
from .scene import SceneView, body_paths

REFRESH_HZ = 20.0
PLOT_HZ = 2.0
HISTORY = 600           # points kept per plot
RATE_WINDOW = 1.0       # s of commands counted for the command rate
GHOST_RGB = (0.25, 0.55, 1.0)
PATH_RGB = (255, 140, 0)
DRIVEN_BY = {'planner': 'expert (planner node)', 'executor': 'policy (executor node)',
             'none': 'nobody'}


def check_port_free(host: str, port: int):
    """ApexError naming the port if something listens on host:port (viser would silently
    move to the next free port)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise ApexError(f'port {port} on {host} is in use ({e.strerror}); choose another '
                            'with --port (port:= for the viz node)') from None


class Series:
    """A plot's columns: x and named y values, the last HISTORY points."""

    def __init__(self, *names):
        self.names = names
        self.rows = collections.deque(maxlen=HISTORY)

    def add(self, x, *ys):
        self.rows.append((float(x), *(float(y) for y in ys)))

    def columns(self) -> tuple:
        if not self.rows:
            return tuple(np.zeros(0) for _ in range(len(self.names) + 1))
        return tuple(np.array(c, dtype=np.float64) for c in zip(*self.rows))


def padded_range(values) -> list:
    """[low, high] around the finite `values`, 5 % margins ([0, 1] when there are none)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [0.0, 1.0]
    low, high = float(values.min()), float(values.max())
    pad = 0.05 * (high - low) if high > low else max(0.1 * abs(high), 1.0)
    return [low - pad, high + pad]


def plot_scales(columns, scale_names) -> dict:
    """Static uPlot ranges for `columns` (x, y...) whose y columns use `scale_names`: the
    viser client keeps the ranges of a chart's first data when its data grows, so every
    update sends them."""
    scales = {'x': {'time': False, 'auto': False, 'range': padded_range(columns[0])}}
    for name in dict.fromkeys(scale_names):
        on_scale = [c for c, n in zip(columns[1:], scale_names) if n == name]
        scales[name] = {'auto': False, 'range': padded_range(np.concatenate(on_scale))}
    return scales


def _series(label, color, scale='y'):
    return {'label': label, 'stroke': color, 'width': 2, 'scale': scale,
            'points': {'show': True, 'size': 4}}


class ViewPage:
    """`task`: an apex_ros Task (its model is drawn). Serves on host:port (0: any free port;
    `port` then tells which); ApexError if the port is taken."""

    def __init__(self, task, host: str = '127.0.0.1', port: int = 8080, title: str = ''):
        check_port_free(host, port)
        self.task, self.model = task, task.model
        self.server = viser.ViserServer(host=host, port=port, label=title or None, verbose=False)
        self.port = self.server.get_port()
        if port and self.port != port:   # lost a race for the port
            self.server.stop()
            raise ApexError(f'port {port} on {host} is in use; choose another with --port')
        self.url = f'http://{host}:{self.port}/'
        self.server.scene.set_up_direction('+z')
        # looking along +y at the model's centre (MuJoCo's default view of a planar robot)
        center, extent = self.model.stat.center.copy(), float(self.model.stat.extent)
        self.server.initial_camera.look_at = center
        self.server.initial_camera.position = center + np.array([0.2, -0.9, 0.25]) * extent
        self.robot = SceneView(self.server, self.model, '/robot', task=task)
        self.ghost = SceneView(self.server, self.model, '/plan/ghost', opacity=0.3,
                               color=GHOST_RGB, task=task)
        self._set_ghost_visible(False)
        self.joints = JointStates(self.model)
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = None
        self.t0 = time.monotonic()
        # pending work for refresh(), written by the on_* methods under the lock
        self.state = None            # (nstate,) to show, or None: nothing new
        self.state_source = None     # the topic the shown state came from
        self.states_published = 0    # the state publisher's count (its sequence number)
        self.full_state_seen = False
        self.plan = None
        self.command_samples = collections.deque()   # (stamp s, sequence number, latency ms)
        self.new_command_sample = False
        self.status = None
        self.episodes = 0                 # episode returns received
        self.last_episode_driver = None   # who drove the latest episode
        self.plots_dirty = False
        self.next_plot = 0.0
        self.plots_drawn = 0         # how many times the plots were redrawn (tests, status)
        self.returns = Series('return')
        self.iterations = Series('expert', 'policy')
        self.commands = Series('rate', 'latency')
        self.lambdas = Series('guidance', 'action_norm')
        self.plan_times = Series('plan')
        self._build_gui()

    # --- the GUI ------------------------------------------------------------------------------
    def _build_gui(self):
        gui = self.server.gui
        gui.configure_theme(control_width='large', dark_mode=False)
        self.status_md = gui.add_markdown(self._status_text())
        self.scale_names = {}   # id(plot handle) -> the scale of each y column

        def plot(title_, series, axes=None):
            columns = tuple(np.zeros(0) for _ in range(len(series)))
            scale_names = [s['scale'] for s in series[1:]]
            handle = gui.add_uplot(columns, series, title=title_, aspect=2.0,
                                   scales=plot_scales(columns, scale_names), axes=axes)
            self.scale_names[id(handle)] = scale_names
            return handle
        self.returns_plot = plot('Episode return', (
            {'label': 'episode'}, _series('return', '#2a6fdb')))
        self.iterations_plot = plot('Return per APEX iteration', (
            {'label': 'iteration'}, _series('expert', '#d62728'), _series('policy', '#2a6fdb')))
        self.commands_plot = plot(
            'Commands: rate (Hz) and latency (ms)',
            ({'label': 't (s)'}, _series('rate Hz', '#2ca02c', 'Hz'),
             _series('latency ms', '#9467bd', 'ms')),
            axes=({}, {'scale': 'Hz'}, {'scale': 'ms', 'side': 1, 'grid': {'show': False}}))
        self.lambdas_plot = plot('Adaptive λ', (
            {'label': 't (s)'}, _series('guidance λ₁', '#ff7f0e'),
            _series('action norm λ₂', '#8c564b')))
        self.plan_plot = plot('Planning time per step (ms)', (
            {'label': 't (s)'}, _series('plan ms', '#17becf')))

    def _status_text(self) -> str:
        s = self.status
        driver = DRIVEN_BY.get(s.driver, s.driver) if s is not None else 'unknown (no trainer)'
        apex = (f'iteration {s.iteration}/{s.iterations}, phase {s.phase}' if s is not None
                else 'no status received')
        lines = [f'**Driving the simulation:** {driver}', f'**APEX:** {apex}',
                 f'**Scene:** {self.task.name}, {len(self.robot.bodies)} bodies '
                 f'({", ".join(self.robot.bodies)})',
                 f'**State:** {self.states_published} published'
                 + (f' ({self.state_source})' if self.state_source else '')]
        if self.returns.rows:
            lines.append(f'**Last episode return:** {self.returns.rows[-1][1]:.2f} '
                         f'({self.episodes} episodes; driven by '
                         f'{self.last_episode_driver})')
        if self.commands.rows:
            _, rate, latency = self.commands.rows[-1]
            lines.append(f'**Commands:** {rate:.1f} Hz, latency {latency:.2f} ms')
        if self.plan_times.rows:
            lam = self.lambdas.rows[-1]
            lines.append(f'**Plan:** {self.plan_times.rows[-1][1]:.1f} ms per step, '
                         f'λ = ({lam[1]:.3g}, {lam[2]:.3g})')
        lines.append(f'**Plots drawn:** {self.plots_drawn}')
        return '  \n'.join(lines)

    def _set_ghost_visible(self, visible: bool):
        for frame in self.ghost.bodies.values():
            frame.visible = visible

    # --- inputs (any thread) ------------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic() - self.t0

    def on_states(self, topic: str, published: int):
        """The state stream on `topic` has published `published` messages so far."""
        with self.lock:
            self.states_published = published

    def on_full_state(self, state):
        """A FULLPHYSICS state (nstate,) of the simulation, to show."""
        with self.lock:
            self.state, self.state_source = np.array(state), protocol.FULL_STATE
            self.full_state_seen = True

    def on_joint_state(self, names, positions, velocities=()):
        """A sensor_msgs/JointState's fields, to show unless full states arrive."""
        with self.lock:
            if self.full_state_seen:
                return
            self.state = self.joints.to_state(list(names), list(positions), list(velocities))
            self.state_source = protocol.JOINT_STATES

    def on_commands(self, published: int, stamp: float, latency_ms: float | None):
        """A sample of the command stream: its publisher's count so far, the latest command's
        source time (s) and its latency after the latest state (ms; None: not known)."""
        with self.lock:
            if self.command_samples and published < self.command_samples[-1][1]:
                self.command_samples.clear()   # another publisher (the driver changed)
            self.command_samples.append((stamp, published, latency_ms))
            self.new_command_sample = True

    def on_plan(self, plan: protocol.Plan):
        with self.lock:
            self.plan = plan
            t = self.now()
            self.lambdas.add(t, *plan.lambdas[:2])
            self.plan_times.add(t, 1e3 * plan.plan_seconds)
            self.plots_dirty = True

    def on_status(self, status: protocol.Status):
        with self.lock:
            self.status = status
            if status.expert_return is not None and status.policy_return is not None:
                finished = (status.iterations if status.phase == 'final'
                            else status.iteration - 1)
                if not self.iterations.rows or self.iterations.rows[-1][0] != finished:
                    self.iterations.add(finished, status.expert_return, status.policy_return)
                    self.plots_dirty = True

    def on_episode_return(self, value: float):
        with self.lock:
            driver = self.status.driver if self.status is not None else 'none'
            self.episodes += 1
            self.returns.add(self.episodes, value)
            self.last_episode_driver = DRIVEN_BY.get(driver, driver)
            self.plots_dirty = True

    # --- output -------------------------------------------------------------------------------
    def refresh(self):
        """Push what changed since the last call to the browsers."""
        with self.lock:
            state, self.state = self.state, None
            plan, self.plan = self.plan, None
            t = self.now()
            plots_due = t >= self.next_plot
            if plots_due:
                self._sample_commands(t)
                plots_due = self.plots_dirty
            if plots_due:
                self.plots_dirty = False
                self.next_plot = t + 1.0 / PLOT_HZ
                plot_data = [(handle, series.columns()) for handle, series in (
                    (self.returns_plot, self.returns), (self.iterations_plot, self.iterations),
                    (self.commands_plot, self.commands), (self.lambdas_plot, self.lambdas),
                    (self.plan_plot, self.plan_times))]
                self.plots_drawn += 1
            status_text = self._status_text()
        if state is not None:
            self.robot.show_state(state)
            self.ghost.apply_extra(state)   # the plan's ghost in the same scene (door)
        if plan is not None:
            self._show_plan(plan)
        if plots_due:
            with self.server.atomic():
                for handle, columns in plot_data:
                    handle.data = columns
                    handle.scales = plot_scales(columns, self.scale_names[id(handle)])
        if self.status_md.content != status_text:
            self.status_md.content = status_text

    def _sample_commands(self, t):
        """Append the command rate and median latency over the samples of the last
        RATE_WINDOW s of command time to the commands plot, if a new sample came."""
        samples = self.command_samples
        if not self.new_command_sample or len(samples) < 2:
            return
        self.new_command_sample = False
        while samples[-1][0] - samples[0][0] > RATE_WINDOW and len(samples) > 2:
            samples.popleft()
        (t0, n0, _), (t1, n1, _) = samples[0], samples[-1]
        if t1 <= t0:
            return
        latencies = [ms for _, _, ms in samples if ms is not None]
        if latencies:
            latency = float(np.median(latencies))
        elif self.commands.rows:
            latency = self.commands.rows[-1][2]   # none measured in the window: the last one
        else:
            return                                # no latency known yet
        self.commands.add(t, (n1 - n0) / (t1 - t0), latency)
        self.plots_dirty = True

    def _show_plan(self, plan):
        self.ghost.show_qpos(plan.qpos[-1])
        self._set_ghost_visible(True)
        paths = body_paths(self.model, plan.qpos)          # (T, B, 3)
        if len(paths) < 2 or paths.shape[1] == 0:
            return
        segments = np.stack([paths[:-1], paths[1:]], axis=2)   # (T-1, B, 2, 3)
        self.server.scene.add_line_segments(
            '/plan/paths', segments.reshape(-1, 2, 3).astype(np.float32), colors=PATH_RGB,
            thickness=3.0, thickness_units='screen')

    def start(self):
        """Refresh at REFRESH_HZ in a daemon thread until stop()."""
        def loop():
            period = 1.0 / REFRESH_HZ
            while not self.stopped.wait(period):
                self.refresh()
        self.thread = threading.Thread(target=loop, name='view-refresh', daemon=True)
        self.thread.start()

    def stop(self):
        self.stopped.set()
        if self.thread is not None:
            self.thread.join(timeout=2.0)
        self.server.stop()
