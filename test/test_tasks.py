"""Tasks: registry, model loading, observation layouts, rewards, success, actuated joints."""
import importlib.util
import xml.etree.ElementTree as ET
from pathlib import Path

import mujoco
import numpy as np
import pytest

from apex_ros.errors import ApexError, ConfigError
from apex_ros.planners.costs import main_cost
from apex_ros.sim.models import load_model
from apex_ros.sim.observation import Observation
from apex_ros.sim.simulation import Simulation
from apex_ros.tasks import TASKS, make_task, task_class

GYM_ASSETS = (Path(importlib.util.find_spec('gymnasium').origin).parent
              / 'envs' / 'mujoco' / 'assets')
MODELS = Path(__file__).resolve().parent.parent / 'models'


# --- registry and model files ------------------------------------------------------------------

def test_unknown_task_lists_known_names():
    with pytest.raises(ApexError) as err:
        make_task('cartpole_balance')
    msg = str(err.value)
    assert "'cartpole_balance'" in msg
    for name in ('cartpole_swingup', 'halfcheetah_run', 'humanoid_standup'):
        assert name in msg


def test_registry_names_match_classes(tasks):
    assert set(TASKS) == {'adroit_door', 'cartpole_swingup', 'halfcheetah_run',
                          'humanoid_standup', 'ur5e_reach', 'fetch_pick_and_place'}
    for name, task in tasks.items():
        assert task_class(name) is type(task)
        assert task.name == name


def test_missing_model_file_names_the_path():
    with pytest.raises(ApexError, match=r'model file not found: .*models[/\\]nope\.xml'):
        load_model('nope.xml')


def test_missing_gymnasium_model_names_the_path():
    with pytest.raises(ApexError, match=r'not found: .*assets[/\\]nope\.xml'):
        load_model('gymnasium:nope.xml')
    with pytest.raises(ApexError, match=r'not found: .*gymnasium_robotics[/\\]envs[/\\]'
                       r'assets[/\\]nope\.xml'):
        load_model('gymnasium_robotics:nope.xml')


def test_missing_absolute_model_names_the_path(tmp_path):
    path = tmp_path / 'absent.xml'
    with pytest.raises(ApexError, match=str(path)):
        load_model(str(path))


def test_malformed_model_is_an_apex_error(tmp_path):
    path = tmp_path / 'broken.xml'
    path.write_text('<mujoco><worldbody><body><joint type="nonsense"/></body></worldbody>'
                    '</mujoco>')
    with pytest.raises(ApexError, match='broken.xml'):
        load_model(str(path))


def test_halfcheetah_total_mass_applied_like_the_compiler_attribute(halfcheetah):
    """load_model strips settotalmass and applies mj_setTotalmass after compiling: same
    masses and inertias as MuJoCo's own (deprecated) handling of the attribute."""
    ref = mujoco.MjModel.from_xml_path(str(GYM_ASSETS / 'half_cheetah.xml'))
    m = halfcheetah.model
    assert m.body_mass.sum() == pytest.approx(14.0, rel=1e-12)
    np.testing.assert_allclose(m.body_mass, ref.body_mass, rtol=1e-12)
    np.testing.assert_allclose(m.body_inertia, ref.body_inertia, rtol=1e-12, atol=1e-15)


def test_episode_steps_override_and_validation():
    assert make_task('cartpole_swingup', episode_steps=7).episode_steps == 7
    with pytest.raises(ApexError, match='episode_steps'):
        make_task('cartpole_swingup', episode_steps=0)


def test_task_params_validated_by_key():
    task = make_task('halfcheetah_run', {'max_root_angle': 0.5})
    assert task.params.max_root_angle == 0.5
    with pytest.raises(ConfigError, match=r'task\.params: unknown key\(s\) nope'):
        make_task('halfcheetah_run', {'nope': 1})
    with pytest.raises(ConfigError, match=r'task\.params\.max_root_angle'):
        make_task('halfcheetah_run', {'max_root_angle': 'big'})


# --- observations -------------------------------------------------------------------------------

@pytest.mark.parametrize('name, size', [
    ('cartpole_swingup', 5), ('halfcheetah_run', 17), ('humanoid_standup', 45)])
def test_observation_sizes(tasks, name, size):
    task = tasks[name]
    assert task.obs_dim == size
    state = Simulation(task).reset(0)
    obs = task.observe(state)
    assert obs.shape == (size,) and obs.dtype == np.float32
    assert task.observe(np.stack([state, state])).shape == (2, size)


@pytest.mark.parametrize('name', ['cartpole_swingup', 'halfcheetah_run', 'humanoid_standup'])
def test_observation_terms_reference_real_joints(tasks, name):
    """Every term names a joint of the model, and its value is that joint's coordinate
    read straight from MjData (cos/sin applied)."""
    task = tasks[name]
    m = task.model
    sim = Simulation(task)
    sim.reset(1)
    rng = np.random.default_rng(0)
    for _ in range(3):
        sim.step(rng.uniform(task.action_low, task.action_high))
    d = sim.data
    obs = task.observe(sim.state())
    for i, term in enumerate(task.observation.terms):
        kind, rest = term.split(':')
        joint, _, index = rest.partition('[')
        jid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, joint)
        assert jid >= 0, f'{term}: no such joint'
        k = int(index.rstrip(']')) if index else 0
        if kind == 'qvel':
            value = d.qvel[m.jnt_dofadr[jid] + k]
        else:
            value = d.qpos[m.jnt_qposadr[jid] + k]
            value = {'qpos': value, 'cos': np.cos(value), 'sin': np.sin(value)}[kind]
        assert obs[i] == np.float32(value), term


def test_cartpole_observation_layout(cartpole):
    state = Simulation(cartpole).reset(2)
    x, theta, xd, thd = state[1:5]
    np.testing.assert_array_equal(cartpole.observe(state),
                                  np.float32([x, np.cos(theta), np.sin(theta), xd, thd]))


def test_halfcheetah_observation_is_gymnasiums(halfcheetah):
    """gymnasium HalfCheetah-v5: qpos without rootx, then qvel."""
    sim = Simulation(halfcheetah)
    sim.reset(3)
    obs = halfcheetah.observe(sim.state())
    np.testing.assert_array_equal(
        obs, np.concatenate([sim.data.qpos[1:], sim.data.qvel]).astype(np.float32))


def test_halfcheetah_failed_means_root_pitched_beyond_the_limit(halfcheetah):
    upright = Simulation(halfcheetah).reset(0)
    rooty = halfcheetah.layout.qpos.start + 2    # qpos: rootx, rootz, rooty, ...
    nose_up, flipped = upright.copy(), upright.copy()
    nose_up[rooty], flipped[rooty] = 1.2, -2.9
    states = np.stack([upright, nose_up, flipped])
    np.testing.assert_array_equal(halfcheetah.failed(states), [False, True, True])
    assert make_task('cartpole_swingup').failed(states[:, :5]) is None


def test_humanoid_observation_is_gymnasiums_state_part(humanoid):
    """gymnasium HumanoidStandup-v5 begins with qpos without the root's x, y, then qvel."""
    sim = Simulation(humanoid)
    sim.reset(3)
    obs = humanoid.observe(sim.state())
    np.testing.assert_array_equal(
        obs, np.concatenate([sim.data.qpos[2:], sim.data.qvel]).astype(np.float32))


def test_observation_does_not_modify_states(cartpole):
    states = np.stack([Simulation(cartpole).reset(s) for s in range(3)])
    before = states.copy()
    cartpole.observe(states)
    assert np.array_equal(states, before)


@pytest.mark.parametrize('terms, match', [
    (('qpos:nojoint',), "no joint 'nojoint'"),
    (('acc:slider',), 'expected qpos'),
    (('qpos:root',), 'root.*7 position coordinates'),
    (('qvel:root[6]',), 'root.*6 velocity coordinates'),
])
def test_observation_term_errors(humanoid, cartpole, terms, match):
    model = cartpole.model if 'slider' in terms[0] or 'nojoint' in terms[0] else humanoid.model
    with pytest.raises(ApexError, match=match):
        Observation(model, terms)


# --- rewards ------------------------------------------------------------------------------------

def test_halfcheetah_reward_is_forward_velocity_minus_control(halfcheetah):
    sim = Simulation(halfcheetah)
    before = sim.reset(4)
    a = np.random.default_rng(0).uniform(-1, 1, halfcheetah.nu)
    reward, after = sim.step(a)
    assert abs(after[3]) < halfcheetah.params.max_root_angle    # no root-angle penalty here
    assert halfcheetah.dt == pytest.approx(0.05)
    expected = (after[1] - before[1]) / 0.05 - 0.1 * np.sum(a ** 2)
    assert reward == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert after[1] != before[1]          # it really moved: the forward term is exercised


@pytest.mark.parametrize('beyond', [0.4, -0.6])
def test_halfcheetah_root_angle_penalty_is_for_the_planner_only(halfcheetah, beyond):
    """As in the paper: the planner pays for rolling, returns count gymnasium's reward."""
    limit = halfcheetah.params.max_root_angle
    state = Simulation(halfcheetah).reset(0)
    state[1 + 2] = np.sign(beyond) * limit + beyond   # qpos: rootx, rootz, rooty
    state[2] = 0.5                  # lift it off the floor
    state[halfcheetah.layout.qvel] = 0.0
    a = np.full(halfcheetah.nu, 0.5)
    sim = Simulation(halfcheetah)
    sim.reset(state=state)
    before = sim.state()
    reward, after = sim.step(a)
    excess = abs(after[3]) - halfcheetah.params.max_root_angle
    assert excess > 0.2
    forward = (after[1] - before[1]) / halfcheetah.dt - 0.1 * np.sum(a ** 2)
    assert reward == pytest.approx(forward, rel=1e-12)
    transition = np.stack([before, after])[None], a[None, None]
    planned = halfcheetah.planning_reward(*transition)[0, 0]
    assert planned == pytest.approx(forward - 100.0 * excess, rel=1e-12)
    assert main_cost(halfcheetah, *transition)[0] == -planned
    free = make_task('halfcheetah_run', {'root_angle_penalty': 0.0})
    assert free.planning_reward(*transition)[0, 0] == pytest.approx(reward, rel=1e-12)


def test_halfcheetah_reward_is_batched_per_step(halfcheetah):
    """reward(states (B, H+1), actions (B, H)) -> (B, H): entry t uses states t, t+1."""
    rng = np.random.default_rng(1)
    states = rng.normal(size=(3, 5, halfcheetah.layout.size))
    actions = rng.uniform(-1, 1, (3, 4, halfcheetah.nu))
    r = halfcheetah.reward(states, actions)
    assert r.shape == (3, 4)
    b, t = 2, 1
    single = halfcheetah.reward(states[b:b + 1, t:t + 2], actions[b:b + 1, t:t + 1])
    assert r[b, t] == single[0, 0]


def test_humanoid_reward_is_height_over_timestep(humanoid):
    sim = Simulation(humanoid)
    sim.reset(0)
    a = np.random.default_rng(0).uniform(humanoid.action_low, humanoid.action_high)
    reward, after = sim.step(a)
    z = sim.data.qpos[2]
    assert after[3] == z
    assert humanoid.model.opt.timestep == pytest.approx(0.003)
    expected = z / 0.003 + 1.0 - 0.1 * np.sum(a ** 2)
    assert reward == pytest.approx(expected, rel=1e-12)


def test_humanoid_planner_can_weigh_controls_as_the_apex_authors_planner(humanoid):
    # their cost -z + 0.1|a|^2 is the reward's balance with the controls weighed 1/timestep more
    rng = np.random.default_rng(0)
    states = rng.normal(size=(3, 5, humanoid.layout.size))
    actions = rng.uniform(-0.4, 0.4, (3, 4, humanoid.nu))
    assert np.array_equal(humanoid.planning_reward(states, actions),
                          humanoid.reward(states, actions))
    authors = make_task('humanoid_standup', params={'planning_ctrl_cost_weight': 0.1 / 0.003})
    z = states[:, 1:, 3]
    their_cost = -z + 0.1 * np.sum(actions ** 2, axis=-1)
    assert np.allclose(authors.planning_reward(states, actions), -their_cost / 0.003 + 1.0,
                       rtol=1e-12, atol=1e-9)
    assert np.array_equal(authors.reward(states, actions), humanoid.reward(states, actions))


def test_cartpole_reward_is_one_when_upright_centred_and_still(cartpole):
    states = np.zeros((1, 2, cartpole.layout.size))
    actions = np.zeros((1, 1, 1))
    assert cartpole.reward(states, actions)[0, 0] == 1.0
    hanging = states.copy()
    hanging[:, 1, 2] = np.pi
    assert cartpole.reward(hanging, actions)[0, 0] == pytest.approx(0.0, abs=1e-12)


def test_simulation_step_clips_action_before_reward(cartpole):
    sim = Simulation(cartpole)
    sim.reset(0)
    reward_big, after_big = sim.step([5.0])
    sim.reset(0)
    reward_one, after_one = sim.step([1.0])
    assert reward_big == reward_one
    assert np.array_equal(after_big, after_one)


# --- success ------------------------------------------------------------------------------------

def cartpole_states(thetas):
    states = np.zeros((len(thetas), 5))
    states[:, 2] = thetas
    return states


def test_cartpole_success_upright_tail(cartpole):
    T = 201
    upright_tail = np.full(T, np.pi)
    upright_tail[-50:] = 0.1                  # tail (last 20% = 40 states) upright
    assert cartpole.success(cartpole_states(upright_tail)) is True
    # upright by a full turn counts too (cos is what matters)
    assert cartpole.success(cartpole_states(upright_tail + 2 * np.pi * (upright_tail < 1))) is True


def test_cartpole_success_false_when_hanging_or_falling(cartpole):
    T = 201
    assert cartpole.success(cartpole_states(np.full(T, np.pi))) is False
    falls_at_end = np.zeros(T)
    falls_at_end[-1] = 0.5                    # cos(0.5) = 0.88 < 0.95
    assert cartpole.success(cartpole_states(falls_at_end)) is False
    # upright early, hanging in the tail
    early = np.full(T, np.pi)
    early[:100] = 0.0
    assert cartpole.success(cartpole_states(early)) is False


def test_cartpole_success_params(cartpole):
    lenient = make_task('cartpole_swingup', {'success_cos': 0.8})
    thetas = np.full(101, 0.5)                # cos 0.88
    assert cartpole.success(cartpole_states(thetas)) is False
    assert lenient.success(cartpole_states(thetas)) is True


def test_other_tasks_have_no_success_metric(halfcheetah, humanoid):
    for task in (halfcheetah, humanoid):
        assert task.success(np.zeros((5, task.layout.size))) is None


# --- actuated joints and bounds -----------------------------------------------------------------

def xml_actuator_joints(path):
    root = ET.parse(path).getroot()
    return [m.get('joint') for m in root.find('actuator')]


@pytest.mark.parametrize('name, xml', [
    ('cartpole_swingup', MODELS / 'cartpole.xml'),
    ('halfcheetah_run', GYM_ASSETS / 'half_cheetah.xml'),
    ('humanoid_standup', GYM_ASSETS / 'humanoidstandup.xml'),
])
def test_actuated_joints_in_actuator_order(tasks, name, xml):
    task = tasks[name]
    names = task.actuated_joints()
    assert names == xml_actuator_joints(xml)
    assert len(names) == task.nu


def test_cartpole_actuated_joint_and_bounds(cartpole):
    assert cartpole.actuated_joints() == ['slider']
    np.testing.assert_array_equal(cartpole.action_low, [-1.0])
    np.testing.assert_array_equal(cartpole.action_high, [1.0])
    assert cartpole.dt == pytest.approx(0.05)


TENDON_XML = """
<mujoco>
  <worldbody>
    <body><joint name="a" type="slide" axis="1 0 0"/><geom size="0.1" mass="1"/></body>
  </worldbody>
  <tendon><fixed name="t"><joint joint="a" coef="1"/></fixed></tendon>
  <actuator><motor name="pull" tendon="t" ctrlrange="-1 1"/></actuator>
</mujoco>
"""


def test_actuator_not_on_a_joint_is_reported(model_task):
    task = model_task(TENDON_XML)
    with pytest.raises(ApexError, match='pull.*does not drive a joint'):
        task.actuated_joints()


def test_model_without_actuators_rejected(model_task):
    xml = ('<mujoco><worldbody><body><joint name="a" type="slide"/><geom size="0.1"/>'
           '</body></worldbody></mujoco>')
    with pytest.raises(ApexError, match='no actuators'):
        model_task(xml)


def test_actuator_without_ctrlrange_rejected(model_task):
    xml = ('<mujoco><worldbody><body><joint name="a" type="slide"/><geom size="0.1"/>'
           '</body></worldbody><actuator><motor joint="a"/></actuator></mujoco>')
    with pytest.raises(ApexError, match='ctrlrange'):
        model_task(xml)


# --- resets -------------------------------------------------------------------------------------

@pytest.mark.parametrize('name', ['cartpole_swingup', 'halfcheetah_run', 'humanoid_standup'])
def test_reset_is_seeded_and_bounded(tasks, name):
    task = tasks[name]
    sim = Simulation(task)
    a, b, c = sim.reset(5), sim.reset(5), sim.reset(6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a[0] == 0.0
    m = task.model
    qpos0 = m.qpos0.copy()
    if name == 'cartpole_swingup':
        qpos0[1] = np.pi                       # starts hanging down
    assert np.all(np.abs(task.qpos(a) - qpos0) <= task.reset_noise + 1e-12)


def test_reset_to_given_state(halfcheetah):
    sim = Simulation(halfcheetah)
    state = sim.reset(1)
    for _ in range(3):
        sim.step(np.zeros(halfcheetah.nu))
    assert sim.steps == 3
    again = sim.reset(state=state)
    assert np.array_equal(again, state) and sim.steps == 0
