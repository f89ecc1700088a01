"""Run configuration files (apex_ros.config.run.load_run_config): errors name file and key."""
import re

import pytest
import yaml

from apex_ros.config.run import load_run_config
from apex_ros.errors import ApexError, ConfigError
from apex_ros.planners import ICEMConfig
from apex_ros.planners.random_shooting import RandomShootingConfig
from apex_ros.resources import config_path
from apex_ros.ros.protocol import FULL_STATE_QOS
from apex_ros.tasks import TASKS

VALID = """\
task:
  name: cartpole_swingup
  episode_steps: 50
  params:
    control_weight: 0.3
planner:
  name: icem
  horizon: 12
  budget: 80
rollout:
  threads: 2
seed: 4
"""


@pytest.fixture
def write(tmp_path):
    def write(text, name='run.yaml'):
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


def edited(**sections):
    """VALID with whole top-level sections replaced (None deletes one)."""
    data = yaml.safe_load(VALID)
    for key, value in sections.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return yaml.safe_dump(data)


def config_error(path, **kw):
    with pytest.raises(ConfigError) as err:
        load_run_config(path=path, **kw)
    msg = str(err.value)
    assert str(path) in msg, f'file not named: {msg}'
    return msg


# --- a valid file -------------------------------------------------------------------------------

def test_valid_file_is_read_into_typed_sections(write):
    path = write(VALID)
    cfg = load_run_config(path=path)
    assert cfg.path == path
    assert cfg.task.name == 'cartpole_swingup' and cfg.task.episode_steps == 50
    assert cfg.planner_name == 'icem'
    assert isinstance(cfg.planner, ICEMConfig)
    assert (cfg.planner.horizon, cfg.planner.budget) == (12, 80)
    assert cfg.planner.elites == ICEMConfig().elites          # unspecified: the default
    assert cfg.rollout.threads == 2 and cfg.seed == 4
    task = cfg.make_task()
    assert task.episode_steps == 50 and task.params.control_weight == 0.3
    planner = cfg.make_planner(task)
    try:
        assert planner.cfg is cfg.planner
        assert planner.rollouts.threads == 2 and planner.seed == 4
    finally:
        planner.rollouts.close()


def test_overrides_apply_on_top_of_the_file(write):
    path = write(VALID)
    cfg = load_run_config(path=path, overrides={'planner': {'budget': 120}, 'seed': 9})
    assert cfg.planner.budget == 120 and cfg.planner.horizon == 12 and cfg.seed == 9
    msg = config_error(path, overrides={'planner': {'budget': 'lots'}})
    assert 'planner.budget' in msg


def test_random_shooting_section(write):
    cfg = load_run_config(path=write(edited(planner={'name': 'random_shooting', 'budget': 7})))
    assert cfg.planner_name == 'random_shooting'
    assert isinstance(cfg.planner, RandomShootingConfig) and cfg.planner.budget == 7
    # an iCEM-only key is unknown to random shooting
    msg = config_error(write(edited(planner={'name': 'random_shooting', 'elites': 3})))
    assert 'planner' in msg and 'elites' in msg


@pytest.mark.parametrize('name', sorted(TASKS))
def test_shipped_configs_load(name):
    path = config_path(f'{name}.yaml')
    raw = yaml.safe_load(path.read_text())
    cfg = load_run_config(name)
    assert cfg.path == path and cfg.task.name == name
    for key, value in raw.get('planner', {}).items():
        if key != 'name':
            assert getattr(cfg.planner, key) == value, key
    task = cfg.make_task()
    assert task.name == name
    # the sim's full-state writer keeps a whole episode for a lagging trainer (topics.py)
    assert task.episode_steps + 1 <= FULL_STATE_QOS['depth']


# --- errors name the file and the key -----------------------------------------------------------

def test_missing_task_section(write):
    msg = config_error(write(edited(task=None)))
    assert re.search(r'\btask\b.*missing', msg)


def test_empty_file_lacks_task_section(write):
    msg = config_error(write(''))
    assert 'task' in msg


def test_task_name_required(write):
    msg = config_error(write(edited(task={'episode_steps': 5})))
    assert 'task.name' in msg and 'missing' in msg


def test_unknown_section(write):
    msg = config_error(write(VALID + 'planer:\n  horizon: 3\n'))
    assert 'planer' in msg
    assert 'planner' in msg          # the known sections are listed


def test_unknown_planner_key(write):
    msg = config_error(write(edited(planner={'name': 'icem', 'horizn': 10})))
    assert 'planner' in msg and 'horizn' in msg
    assert 'horizon' in msg          # the known keys are listed


@pytest.mark.parametrize('text, key', [
    ('planner:\n  budget: abc\n', 'planner.budget'),
    ('planner:\n  sigma: fast\n', 'planner.sigma'),
    ('planner:\n  add_mean: 1\n', 'planner.add_mean'),
    ('planner:\n  horizon: 2.5\n', 'planner.horizon'),
    ('planner:\n  name: 3\n', 'planner.name'),
    ('rollout:\n  threads: two\n', 'rollout.threads'),
    ('rollout:\n  threads: 0\n', 'rollout.threads'),
    ('rollout:\n  cores: 2\n', 'cores'),
    ('seed: abc\n', 'seed'),
    ('seed: true\n', 'seed'),
])
def test_wrong_values_name_the_key(write, text, key):
    base = edited(**{section: None for section in ('planner', 'rollout', 'seed')})
    msg = config_error(write(base + text))
    assert key in msg


def test_invalid_planner_value_names_the_key(write):
    msg = config_error(write(edited(planner={'elites': 50, 'budget': 100})))
    assert 'planner.budget' in msg and 'elites' in msg


def test_task_section_must_be_a_mapping(write):
    msg = config_error(write(edited(task='cartpole_swingup')))
    assert 'task' in msg and 'mapping' in msg


def test_malformed_yaml(write):
    msg = config_error(write('task:\n  name: [cartpole\n  params: {\n'))
    assert 'malformed YAML' in msg
    assert 'line' in msg             # the parser's position is passed on


def test_top_level_must_be_a_mapping(write):
    msg = config_error(write('- task\n- planner\n'))
    assert 'mapping' in msg


def test_nonexistent_file(tmp_path):
    msg = config_error(tmp_path / 'nowhere.yaml')
    assert 'not found' in msg


def test_task_name_mismatch(write):
    msg = config_error(write(VALID), task_name='halfcheetah_run')
    assert 'task.name' in msg and 'cartpole_swingup' in msg and 'halfcheetah_run' in msg


def test_unknown_requested_task_lists_known_ones():
    with pytest.raises(ApexError, match='cartpole_swingup'):
        load_run_config('cartpole_balance')


def test_neither_task_nor_file():
    with pytest.raises(ConfigError, match='task name or a config file'):
        load_run_config()


def test_bad_task_params_key_named_at_load_time(write):
    path = write(edited(task={'name': 'cartpole_swingup', 'params': {'nope': 1.0}}))
    with pytest.raises(ConfigError) as err:
        load_run_config(path=path)            # rejected before any task is built
    msg = str(err.value)
    assert str(path) in msg and 'task.params' in msg and 'nope' in msg
    assert 'control_weight' in msg   # the known keys are listed


def test_bad_task_params_type_named_when_the_task_is_built(write):
    path = write(edited(task={'name': 'cartpole_swingup', 'params': {'control_weight': 'x'}}))
    with pytest.raises(ConfigError) as err:
        load_run_config(path=path).make_task()
    assert str(path) in str(err.value) and 'task.params.control_weight' in str(err.value)


@pytest.mark.parametrize('value', ['abc', 2.5])
def test_episode_steps_type_checked(write, value):
    path = write(edited(task={'name': 'cartpole_swingup', 'episode_steps': value}))
    msg = config_error(path)
    assert 'task.episode_steps' in msg


@pytest.mark.parametrize('sections, key', [
    ({'task': {'name': 'cartpole_balance'}}, 'task.name'),
    ({'planner': {'name': 'no_such_planner'}}, 'planner.name'),
])
def test_unknown_registry_names_name_file_and_key(write, sections, key):
    msg = config_error(write(edited(**sections)))
    assert key in msg


@pytest.mark.parametrize('sections, known', [
    ({'task': {'name': 'cartpole_balance'}}, 'humanoid_standup'),
    ({'planner': {'name': 'no_such_planner'}}, 'random_shooting'),
])
def test_unknown_registry_names_list_known_ones(write, sections, known):
    with pytest.raises(ApexError, match=known):
        load_run_config(path=write(edited(**sections)))
