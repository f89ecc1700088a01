"""The browser view: its scene holds the model's bodies and follows MuJoCo's kinematics, bad
input is refused with a clear message, and in a real headless browser (Debian's chromium
driven by playwright) the live page loads, moves with /joint_states over DDS, updates its
plots, and a bag replay seeks to the right frame.

The browser tests need /usr/bin/chromium: scripts/test installs it when missing and run as
root; otherwise they are skipped, saying why (CI sets APEX_ROS_REQUIRE_BROWSER=1: a missing
browser fails there instead)."""
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import mujoco
import numpy as np
import pytest
import rclpy
import rosutil  # noqa: I100 (first: isolates the ROS domain before rclpy.init)
from PIL import Image
from rclpy.executors import SingleThreadedExecutor
from rclpy.serialization import serialize_message
from rosutil import wait_for
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray, String

from apex_ros.bags import metadata as md
from apex_ros.bags.writer import BagError, BagWriter
from apex_ros.errors import ApexError
from apex_ros.ros import protocol, qos
from apex_ros.ros.nodes.common import float64_array
from apex_ros.ros.nodes.viz_node import VizNode
from apex_ros.sim.simulation import Simulation
from apex_ros.view.page import ViewPage
from apex_ros.view.replay import Replay, load_frames
from apex_ros.view.scene import body_paths

ARRAY_TYPE = 'std_msgs/msg/Float64MultiArray'
JOINT_STATE_TYPE = 'sensor_msgs/msg/JointState'
CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
# the flags a closed network and a root user need (see the README's Tests section)
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
                  '--no-first-run', '--disable-background-networking',
                  '--disable-component-update', '--disable-sync']


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def page(cartpole):
    view = ViewPage(cartpole, port=0)
    yield view
    view.stop()


# --- the scene, without a browser -------------------------------------------------------------

def test_the_scene_holds_every_body_with_geoms_and_follows_kinematics(page, halfcheetah):
    model = page.model
    assert list(page.robot.bodies) == ['world', 'cart', 'pole']
    assert list(page.ghost.bodies) == ['world', 'cart', 'pole']
    page.robot.show_qpos([0.7, 1.2])
    data = mujoco.MjData(model)
    data.qpos[:] = [0.7, 1.2]
    mujoco.mj_kinematics(model, data)
    poses = page.robot.poses()
    for name in ('cart', 'pole'):
        np.testing.assert_allclose(poses[name][0], data.body(name).xpos)
        np.testing.assert_allclose(poses[name][1], data.body(name).xquat)
    cheetah = ViewPage(halfcheetah, port=0)
    try:
        m = halfcheetah.model
        expected = {m.body(b).name for b in range(m.nbody) if m.body_geomnum[b]}
        assert set(cheetah.robot.bodies) == expected and len(expected) == 8
    finally:
        cheetah.stop()


def test_a_full_state_places_the_model_parameters_of_its_extra_state():
    """The door is drawn where the state's extra columns put it (Task.prepare), not at the
    model's position, and the task's own model is left alone."""
    from apex_ros.tasks import make_task
    door = make_task('adroit_door')
    model_pos = door.model.body('frame').pos.copy()
    sim = Simulation(door)
    state = sim.reset(seed=3)
    view = ViewPage(door, port=0)
    try:
        view.robot.show_state(state)
        drawn = view.robot.poses()['frame'][0]
        np.testing.assert_allclose(drawn, sim.data.body('frame').xpos)
        assert np.abs(drawn - model_pos).max() > 0.01      # the reset moved the door
        np.testing.assert_array_equal(door.model.body('frame').pos, model_pos)
    finally:
        view.stop()


def test_body_paths_are_the_centres_of_mass_along_the_plan(cartpole):
    qpos = np.stack([np.linspace(0, 1, 5), np.zeros(5)], axis=1)
    paths = body_paths(cartpole.model, qpos)
    assert paths.shape == (5, 2, 3)          # cart and pole move; the world does not
    np.testing.assert_allclose(paths[:, 0, 0], np.linspace(0, 1, 5))   # the cart slides
    np.testing.assert_allclose(paths[:, 1, 2], 1.5)                     # pole CoM upright


def test_page_status_and_plots_follow_the_inputs(page):
    page.on_status(protocol.Status(3, 10, 'dagger', 'executor', 90.0, 70.0))
    page.on_episode_return(42.0)
    page.on_states(protocol.JOINT_STATES, 7)
    page.on_joint_state(['slider', 'hinge'], [0.3, 0.0], [0.0, 0.0])
    page.on_commands(100, 10.0, None)      # the first command sample: no rate yet
    page.on_commands(110, 10.5, 1.5)       # 10 more commands in 0.5 s, latency 1.5 ms
    page.on_plan(protocol.Plan(0, 5, 0.04, np.array([0.25, 0.0]), np.zeros((31, 2))))
    page.refresh()
    text = page.status_md.content
    assert 'policy (executor node)' in text and 'iteration 3/10, phase dagger' in text
    assert 'Last episode return:** 42.00' in text and 'λ = (0.25, 0)' in text
    assert 'Plan:** 40.0 ms' in text and 'Commands:** 20.0 Hz, latency 1.50 ms' in text
    assert 'State:** 7 published (/joint_states)' in text
    assert page.returns_plot.data[1].tolist() == [42.0]
    assert page.iterations_plot.data[0].tolist() == [2.0]      # iteration 2 finished
    np.testing.assert_allclose(page.robot.poses()['cart'][0], [0.3, 0, 1])


# --- bad input --------------------------------------------------------------------------------

def test_a_port_in_use_is_refused_naming_it(cartpole):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ApexError, match=f'port {port} on 127.0.0.1 is in use'):
            ViewPage(cartpole, port=port)
        out = run_cli('--port', str(port))        # the live view (viz node) says the same
        assert out.returncode == 2 and 'Traceback' not in out.stderr
        assert f'apex-ros view: error: port {port} on 127.0.0.1 is in use' in out.stderr


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, '-m', 'apex_ros.cli', 'view', *args],
                          capture_output=True, text=True, timeout=timeout)


def test_cli_refuses_an_unknown_task_and_a_bag_without_states(tmp_path):
    out = run_cli('--task', 'no_such_task')
    assert out.returncode == 2 and 'Traceback' not in out.stderr
    assert "apex-ros: error: unknown task 'no_such_task'; known tasks:" in out.stderr
    bag = tmp_path / 'rewards_only'
    with BagWriter(bag) as w:
        w.add_topic(protocol.REWARD, 'std_msgs/msg/Float64', [md.qos_profile()])
        w.write(protocol.REWARD, serialize_message(Float64(data=1.0)), 1)
    out = run_cli(str(bag), '--port', '0')
    assert out.returncode == 2 and 'Traceback' not in out.stderr
    assert (f'{bag} has no states to replay: it lacks both /apex/full_state (full physics '
            'state) and /joint_states (sensor_msgs/JointState); it has: /apex/reward'
            in out.stderr)


def test_a_bag_of_another_robot_is_refused(tmp_path, cartpole):
    bag = tmp_path / 'other_robot'
    with BagWriter(bag) as w:
        w.add_topic(protocol.JOINT_STATES, JOINT_STATE_TYPE, [md.qos_profile()])
        w.write(protocol.JOINT_STATES, serialize_message(
            JointState(name=['elbow'], position=[0.1], velocity=[0.0])), 1)
    with pytest.raises(BagError, match=r"names none of the cartpole_swingup model's joints"):
        load_frames(bag, cartpole)


# --- bags for replay --------------------------------------------------------------------------

def write_bag(path, task, steps=40, full_state=True, period_ns=50_000_000):
    """A bag of one episode of the sim driven by a swaying push; -> states (steps+1, nstate)."""
    sim = Simulation(task)
    sim.reset(0)
    states = []
    with BagWriter(path) as w:
        topic = protocol.FULL_STATE if full_state else protocol.JOINT_STATES
        w.add_topic(topic, ARRAY_TYPE if full_state else JOINT_STATE_TYPE, [md.qos_profile()])
        for step in range(steps + 1):
            state = sim.state()
            states.append(state)
            if full_state:
                data = serialize_message(float64_array(protocol.pack_full_state(
                    protocol.FullState(0, step, state, sim.warmstart()))))
            else:
                qpos = task.qpos(state)
                data = serialize_message(JointState(name=['slider', 'hinge'],
                                                    position=qpos.tolist(), velocity=[0.0, 0.0]))
            w.write(topic, data, 1_000_000_000 + step * period_ns)
            sim.step(np.array([np.sin(0.3 * step)]))
    return np.array(states)


@pytest.mark.parametrize('full_state', [True, False])
def test_frames_come_from_full_states_or_joint_states(tmp_path, cartpole, full_state):
    states = write_bag(tmp_path / 'bag', cartpole, full_state=full_state)
    frames = load_frames(tmp_path / 'bag', cartpole)
    assert frames.topic == (protocol.FULL_STATE if full_state else protocol.JOINT_STATES)
    np.testing.assert_allclose(frames.times, np.arange(41) * 0.05)
    np.testing.assert_allclose(cartpole.qpos(frames.states), cartpole.qpos(states))
    assert frames.index_at(-1.0) == 0 and frames.index_at(0.074) == 1
    assert frames.index_at(0.1) == 2 and frames.index_at(99.0) == 40


# --- a real browser ---------------------------------------------------------------------------

@pytest.fixture(scope='module')
def browser(tmp_path_factory):
    """A playwright-driven headless Debian chromium (no downloaded browser)."""
    if not os.path.exists(CHROMIUM):
        why = (f'no chromium at {CHROMIUM}: Debian\'s chromium is needed for the browser tests '
               '(scripts/test installs it when run as root; otherwise `apt-get install -y '
               'chromium`)')
        if os.environ.get('APEX_ROS_REQUIRE_BROWSER') == '1':   # CI: never skip them
            pytest.fail(why)
        pytest.skip(why)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp('chromium_profile')), executable_path=CHROMIUM,
            headless=True, args=CHROMIUM_FLAGS, viewport={'width': 1400, 'height': 900})
        yield context
        context.close()


SCENE = {'x': 0, 'y': 0, 'width': 960, 'height': 900}     # left of the control panel
PANEL = {'x': 1000, 'y': 0, 'width': 400, 'height': 900}


def pixels(tab, clip) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(tab.screenshot(clip=clip))).convert('RGB'),
                      dtype=np.int16)


def changed_fraction(a, b) -> float:
    return float(np.mean(np.abs(a - b).sum(axis=-1) > 30))


RETURN_BLUE = (42, 111, 219)   # the episode-return line's colour (#2a6fdb)


def color_pixels(image, rgb, tolerance=40) -> int:
    return int(np.sum(np.abs(image - np.array(rgb)).sum(axis=-1) < tolerance))


def wait_changed(tab, clip, before, timeout=15.0, at_least=0.002) -> float:
    """Poll screenshots of `clip` until they differ from `before` (fraction of pixels)."""
    deadline = time.monotonic() + timeout
    while True:
        fraction = changed_fraction(pixels(tab, clip), before)
        if fraction >= at_least or time.monotonic() > deadline:
            return fraction
        time.sleep(0.2)


def settled(tab, clip, timeout=15.0):
    """Screenshots of `clip` once two in a row agree: the browser drew what it was sent."""
    deadline, last = time.monotonic() + timeout, pixels(tab, clip)
    while True:
        time.sleep(0.2)
        now = pixels(tab, clip)
        if changed_fraction(now, last) == 0 or time.monotonic() > deadline:
            return now
        last = now


@pytest.fixture
def live_view(cartpole):
    """The viz node (in this process, spun in a thread) and a publisher node standing in for
    the graph."""
    rclpy.init()
    viz = VizNode('cartpole_swingup', '127.0.0.1', free_port())
    pub = rclpy.create_node('graph_stand_in')
    executor = SingleThreadedExecutor()
    executor.add_node(viz)
    executor.add_node(pub)
    stop = threading.Event()
    spinner = threading.Thread(target=lambda: [executor.spin_once(timeout_sec=0.05)
                                               for _ in iter(stop.is_set, True)], daemon=True)
    spinner.start()
    yield viz, pub
    stop.set()
    spinner.join()
    viz.on_shutdown()
    executor.shutdown()
    viz.destroy_node()
    pub.destroy_node()
    rclpy.shutdown()


def test_the_view_counts_a_cartesian_controllers_commands():
    """Fetch is commanded with TwistStamped on /cartesian_controller/commands (its command
    interface): the view counts those, not a Float64MultiArray topic nobody publishes."""
    from geometry_msgs.msg import TwistStamped
    rclpy.init()
    viz = VizNode('fetch_pick_and_place', '127.0.0.1', free_port())
    pub = rclpy.create_node('cartesian_stand_in')
    try:
        assert viz.command_sub.topic_name == '/cartesian_controller/commands'
        commands = pub.create_publisher(TwistStamped, '/cartesian_controller/commands',
                                        qos.COMMAND)
        assert rosutil.wait_for_subscribers(commands)
        for _ in range(3):
            commands.publish(TwistStamped())
        assert wait_for(lambda: viz.take_latest() or viz.page.command_samples, 10.0)
        assert 1 <= viz.page.command_samples[-1][1] <= 3   # the publisher's count
    finally:
        viz.on_shutdown()
        viz.destroy_node()
        pub.destroy_node()
        rclpy.shutdown()


@pytest.mark.slow
def test_live_page_in_a_browser_moves_with_joint_states_and_updates_plots(
        browser, live_view, tmp_path):
    viz, pub = live_view
    page = viz.page
    joints = pub.create_publisher(JointState, protocol.JOINT_STATES, qos.STATE_PUB)
    returns = pub.create_publisher(Float64, protocol.EPISODE_RETURN, qos.EVENT)
    status = pub.create_publisher(String, protocol.STATUS, qos.STATUS)
    plans = pub.create_publisher(Float64MultiArray, protocol.PLAN, qos.PLAN)
    commands = pub.create_publisher(Float64MultiArray, protocol.command_topic(
        protocol.DEFAULT_CONTROLLER), qos.COMMAND)
    for publisher in (joints, returns, plans, commands):
        assert rosutil.wait_for_subscribers(publisher)

    tab = browser.new_page()
    tab.goto(page.url)
    tab.get_by_text('Driving the simulation').wait_for(timeout=30_000)
    tab.get_by_text('3 bodies (world, cart, pole)').wait_for(timeout=10_000)

    def show(slider, hinge):
        joints.publish(JointState(name=['slider', 'hinge'], position=[slider, hinge],
                                  velocity=[0.0, 0.0]))
    show(-1.0, 0.0)
    assert wait_for(lambda: np.allclose(page.robot.poses()['cart'][0], [-1.0, 0, 1]), 10)
    tab.get_by_text('(/joint_states)').wait_for(timeout=10_000)
    scene_before = settled(tab, SCENE)
    show(1.0, 2.5)
    assert wait_for(lambda: np.allclose(page.robot.poses()['cart'][0], [1.0, 0, 1]), 10)
    assert wait_changed(tab, SCENE, scene_before) >= 0.002, 'the scene did not move'

    panel_before = pixels(tab, PANEL)
    blue_before = color_pixels(panel_before, RETURN_BLUE)
    drawn_before = page.plots_drawn
    status.publish(String(data=protocol.pack_status(
        protocol.Status(2, 4, 'dagger', 'executor', 88.0, 61.0))))
    for value in (10.0, 30.0, 55.5):
        returns.publish(Float64(data=value))
    qpos = np.stack([np.linspace(1.0, 0.0, 31), np.linspace(2.5, 0.0, 31)], axis=1)
    plans.publish(float64_array(protocol.pack_plan(
        protocol.Plan(0, 3, 0.035, np.array([0.4, 0.0]), qpos))))
    for _ in range(5):
        commands.publish(float64_array(protocol.pack_command([0.1])))
    tab.get_by_text('Last episode return: 55.50 (3 episodes').wait_for(timeout=10_000)
    tab.get_by_text('iteration 2/4, phase dagger').wait_for(timeout=10_000)
    tab.get_by_text('35.0 ms per step').wait_for(timeout=10_000)
    assert page.plots_drawn > drawn_before
    np.testing.assert_allclose(page.returns_plot.data[1], [10.0, 30.0, 55.5])
    assert wait_changed(tab, PANEL, panel_before) >= 0.01, 'the plots did not change'
    # the return line is drawn: hundreds of its pixels, not only its legend marker
    assert wait_for(lambda: color_pixels(pixels(tab, PANEL), RETURN_BLUE) > blue_before + 150,
                    10), 'no episode-return line in the plot'
    shot = tmp_path / 'view.png'
    tab.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    tab.close()


@pytest.mark.slow
def test_bag_replay_in_a_browser_seeks_and_plays(browser, tmp_path, cartpole):
    states = write_bag(tmp_path / 'bag', cartpole, steps=40)
    frames = load_frames(tmp_path / 'bag', cartpole)
    page = ViewPage(cartpole, port=0)
    replay = Replay(page, frames, 'bag')
    try:
        tab = browser.new_page()
        tab.goto(page.url)
        tab.get_by_text('Frame 1/41').wait_for(timeout=30_000)

        def cart_x():
            return page.robot.poses()['cart'][0][0]
        slider = tab.get_by_role('slider')
        slider.focus()
        slider.press('End')
        tab.get_by_text('Frame 41/41, t = 2.000 s').wait_for(timeout=10_000)
        assert cart_x() == pytest.approx(cartpole.qpos(states[40])[0], abs=1e-4)
        slider.press('Home')
        tab.get_by_text('Frame 1/41, t = 0.000 s').wait_for(timeout=10_000)
        for frame in (2, 3, 4):
            slider.press('ArrowRight')           # one step each: 0.05 s, one frame
            tab.get_by_text(f'Frame {frame}/41, t = {0.05 * (frame - 1):.3f} s').wait_for(
                timeout=10_000)
        assert cart_x() == pytest.approx(cartpole.qpos(states[3])[0], abs=1e-4)
        tab.get_by_role('button', name='Play').click()
        tab.get_by_role('button', name='Pause').wait_for(timeout=10_000)
        tab.get_by_text('Frame 41/41').wait_for(timeout=15_000)   # 2 s of bag, played
        tab.get_by_role('button', name='Play').wait_for(timeout=10_000)   # stopped at the end
        assert cart_x() == pytest.approx(cartpole.qpos(states[40])[0], abs=1e-4)
        assert len({round(x, 4) for x in cartpole.qpos(states[[3, 39, 40]])[:, 0]}) == 3
        tab.screenshot(path=str(tmp_path / 'replay.png'))
        tab.close()
    finally:
        replay.stop()
        page.stop()
