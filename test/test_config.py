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


# --- base: chains -------------------------------------------------------------------------------

def test_base_chain_merges_key_by_key(tmp_path):
    (tmp_path / 'sub').mkdir()
    (tmp_path / 'root.yaml').write_text(VALID + 'apex:\n  iterations: 7\n  window: 20\n')
    (tmp_path / 'sub' / 'middle.yaml').write_text(
        'base: ../root.yaml\nplanner:\n  budget: 90\napex:\n  window: 30\n')
    leaf = tmp_path / 'sub' / 'leaf.yaml'
    leaf.write_text('base: middle.yaml   # relative to this file\nplanner:\n  sigma: 0.2\n'
                    'train:\n  hidden: [32]\n')
    cfg = load_run_config(path=leaf)
    assert cfg.path == leaf
    assert (cfg.planner.horizon, cfg.planner.budget, cfg.planner.sigma) == (12, 90, 0.2)
    assert (cfg.apex.iterations, cfg.apex.window) == (7, 30)
    assert cfg.train.hidden == [32] and cfg.seed == 4 and cfg.task.episode_steps == 50
    assert cfg.task.params.control_weight == 0.3


def test_base_cycle_is_refused_naming_the_files(tmp_path):
    a, b = tmp_path / 'a.yaml', tmp_path / 'b.yaml'
    a.write_text('base: b.yaml\n' + VALID)
    b.write_text('base: a.yaml\nseed: 1\n')
    msg = config_error(a)
    assert 'cycle' in msg and 'a.yaml' in msg and 'b.yaml' in msg
    own = tmp_path / 'self.yaml'
    own.write_text('base: self.yaml\n' + VALID)
    assert 'cycle' in config_error(own)


def test_missing_base_file_is_named_with_the_file_naming_it(write, tmp_path):
    path = write('base: nowhere.yaml\nseed: 1\n')
    msg = config_error(path)
    assert 'base' in msg and str(tmp_path / 'nowhere.yaml') in msg and 'not found' in msg
    assert 'expected a file name' in config_error(write('base: [a.yaml]\n' + VALID))


def test_an_error_in_a_base_file_names_that_file(tmp_path):
    base = tmp_path / 'base.yaml'
    base.write_text(VALID + 'apex:\n  windw: 3\n')
    child = tmp_path / 'child.yaml'
    child.write_text('base: base.yaml\nseed: 5\n')
    with pytest.raises(ConfigError) as err:
        load_run_config(path=child)
    assert str(err.value).startswith(f'{base}: apex') and 'windw' in str(err.value)


def test_a_child_naming_another_planner_replaces_the_planner_section(tmp_path):
    (tmp_path / 'base.yaml').write_text(VALID + 'planner:\n  name: icem\n  elites: 5\n')
    child = tmp_path / 'child.yaml'
    child.write_text('base: base.yaml\nplanner:\n  name: mppi\n  temperature: 0.5\n')
    cfg = load_run_config(path=child)
    assert cfg.planner_name == 'mppi' and cfg.planner.temperature == 0.5


# --- the shipped configs ------------------------------------------------------------------------

# Every value config/*.yaml spelled out before they were trimmed to their non-default values.
SHIPPED_BEFORE = {
    'cartpole_swingup': {
        'task': {'episode_steps': 200, 'params': {
            'centering_scale': 1.0, 'control_weight': 0.2, 'velocity_weight': 0.5}},
        'planner': {'name': 'icem', 'horizon': 30, 'budget': 100, 'iterations': 3, 'elites': 10,
                    'sigma': 0.5, 'alpha': 0.1, 'gamma': 1.25, 'keep_fraction': 0.3,
                    'beta': 2.0},
        'rollout': {'threads': 1}, 'seed': 0,
        'apex': {'iterations': 10, 'expert_rollouts': 1, 'dagger_rollouts': 1, 'window': 50,
                 'action_norm_c': 0.025, 'eval_episodes': 3, 'ablation': 'none'},
        'train': {'hidden': [128, 128, 128], 'lr': 0.0005, 'l1': 0.000001, 'l2': 0.00001,
                  'batch_size': 1024, 'steps': 1000, 'threads': 1}},
    'halfcheetah_run': {
        'task': {'episode_steps': 1000, 'params': {
            'forward_weight': 1.0, 'ctrl_cost_weight': 0.1, 'max_root_angle': 1.5708,
            'root_angle_penalty': 100.0, 'failed_root_angle': 1.0}},
        'planner': {'name': 'icem', 'horizon': 30, 'budget': 100, 'iterations': 3, 'elites': 10,
                    'sigma': 0.5, 'alpha': 0.1, 'gamma': 1.25, 'keep_fraction': 0.3,
                    'beta': 0.25, 'act': 'mean'},
        'rollout': {'threads': 2}, 'seed': 0,
        'apex': {'iterations': 50, 'expert_rollouts': 1, 'dagger_rollouts': 1, 'window': 50,
                 'action_norm_c': 0.025, 'eval_episodes': 10, 'ablation': 'none',
                 'dagger_until_failure': True},
        'train': {'hidden': [128, 128, 128], 'lr': 0.0005, 'l1': 0.000001, 'l2': 0.00001,
                  'batch_size': 1024, 'steps': 5000, 'threads': 2, 'reinit': True}},
    'humanoid_standup': {    # since issue 15: the paper's 500 steps, iCEM's relative std
        'task': {'episode_steps': 500, 'params': {
            'uph_weight': 1.0, 'ctrl_cost_weight': 0.1, 'alive_bonus': 1.0}},
        'planner': {'name': 'icem', 'horizon': 30, 'budget': 100, 'iterations': 3, 'elites': 10,
                    'sigma': 0.5, 'sigma_relative': True, 'alpha': 0.1, 'gamma': 1.25,
                    'keep_fraction': 0.3,
                    'beta': 2.0},
        'rollout': {'threads': 2}, 'seed': 0,
        'apex': {'iterations': 50, 'expert_rollouts': 1, 'dagger_rollouts': 1, 'window': 100,
                 'action_norm_c': 0.025, 'eval_episodes': 5, 'ablation': 'none'},  # 5 since 12-02
        'train': {'hidden': [128, 128, 128], 'lr': 0.0005, 'l1': 0.000001, 'l2': 0.00001,
                  'batch_size': 1024, 'steps': 1000, 'threads': 1}},
    'adroit_door': {
        'task': {'episode_steps': 200},
        'planner': {'name': 'icem', 'horizon': 30, 'budget': 45, 'iterations': 2, 'elites': 10,
                    'sigma': 0.5, 'sigma_relative': True, 'alpha': 0.1, 'gamma': 1.25,
                    'keep_fraction': 0.3, 'beta': 2.5},
        'apex': {'iterations': 50, 'expert_rollouts': 10, 'dagger_rollouts': 10, 'window': 1000,
                 'action_norm_c': 0.025, 'eval_episodes': 10}},
}


@pytest.mark.parametrize('name', sorted(SHIPPED_BEFORE))
def test_shipped_configs_resolve_to_the_values_they_spelled_out(name, tmp_path):
    before = SHIPPED_BEFORE[name]
    resolved = load_run_config(name).to_dict()
    for section, values in before.items():
        if not isinstance(values, dict):
            assert resolved[section] == values, section
            continue
        for key, value in values.items():
            if isinstance(value, dict):
                for k, v in value.items():
                    assert resolved[section][key][k] == v, f'{section}.{key}.{k}'
            else:
                assert resolved[section][key] == value, f'{section}.{key}'
    # trimmed: a shipped file repeats no default
    raw = yaml.safe_load(config_path(f'{name}.yaml').read_text())
    only_task = tmp_path / 'defaults.yaml'
    only_task.write_text(f'task:\n  name: {name}\n')
    defaults = load_run_config(path=only_task).to_dict()
    for section, values in raw.items():
        if section != 'task':
            for key, value in values.items():
                assert defaults[section][key] != value, f'{section}.{key} repeats its default'


# --- typed sections, to_dict -------------------------------------------------------------------

def test_every_section_is_typed():
    from apex_ros.learning.apex import ApexConfig
    from apex_ros.learning.train_config import TrainConfig
    from apex_ros.learning.value import ValueConfig
    from apex_ros.tasks.cartpole import CartpoleSwingup
    cfg = load_run_config('halfcheetah_run')
    assert isinstance(cfg.apex, ApexConfig) and cfg.apex.dagger_until_failure is True
    assert isinstance(cfg.train, TrainConfig) and cfg.train.reinit is True
    assert isinstance(cfg.value, ValueConfig)
    cfg = load_run_config('cartpole_swingup')
    assert isinstance(cfg.task.params, CartpoleSwingup.Params)
    assert cfg.task.episode_steps == CartpoleSwingup.episode_steps   # the task's own
    assert cfg.schedule == () and cfg.at_iteration(5) is cfg
    assert not hasattr(cfg, 'extra')


def test_to_dict_is_plain_ordered_and_loads_back_to_the_same_config(write):
    path = write(VALID + 'planners:\n  mppi:\n    temperature: 0.3\n'
                 'schedule:\n  - from_iteration: 2\n    set: {planner.sigma: 0.3}\n')
    for planner in (None, 'mppi'):
        cfg = load_run_config(path=path, planner=planner)
        data = cfg.to_dict()
        assert list(data) == ['task', 'planner', 'planners', 'rollout', 'workers', 'apex',
                              'train', 'value', 'seed', 'schedule']
        assert yaml.safe_load(yaml.safe_dump(data, sort_keys=False)) == data   # plain data
        again = load_run_config(path=write(yaml.safe_dump(data, sort_keys=False), 'again.yaml'))
        assert again.to_dict() == data
        assert again.planner_name == (planner or 'icem')
    assert load_run_config(path=path, planner='mppi').planners['icem'].budget == 80


def test_every_present_planners_entry_is_checked_at_load(write):
    msg = config_error(write(VALID + 'planners:\n  mppi:\n    elites: 3\n'))
    assert 'planners.mppi' in msg and 'elites' in msg
    msg = config_error(write(VALID + 'planners:\n  no_such:\n    budget: 3\n'))
    assert 'planners.no_such' in msg
    msg = config_error(write(VALID + 'planners:\n  icem:\n    budget: 3\n'))
    assert 'planners.icem' in msg and 'planner section' in msg


# --- settings (--set) ---------------------------------------------------------------------------

def test_sets_apply_after_the_file_and_overrides(write):
    path = write(VALID)
    cfg = load_run_config(path=path, overrides={'planner': {'budget': 120}},
                          sets=['planner.budget=140', 'task.params.control_weight=0.4',
                                'train.hidden=[64, 64]', 'seed=11', 'planner.act=mean'])
    assert cfg.planner.budget == 140 and cfg.task.params.control_weight == 0.4
    assert cfg.train.hidden == [64, 64] and cfg.seed == 11 and cfg.planner.act == 'mean'


def test_planner_sets_go_to_the_selected_planner(write):
    path = write(VALID + 'planners:\n  mppi:\n    temperature: 0.3\n')
    cfg = load_run_config(path=path, planner='mppi', sets=['planner.temperature=0.7',
                                                           'planner.budget=64'])
    assert cfg.planner_name == 'mppi' and cfg.planner.temperature == 0.7
    assert cfg.planner.budget == 64 and cfg.planner.horizon == 12   # horizon carried over
    assert cfg.planners['icem'].budget == 80                        # the file's planner
    with pytest.raises(ConfigError, match=r'--set planners\.mppi\.elites: unknown key'):
        load_run_config(path=path, planner='mppi', sets=['planner.elites=3'])


@pytest.mark.parametrize('item, named', [
    ('apex.iteratons=3', '--set apex.iteratons: unknown key'),
    ('planer.budget=3', "--set planer.budget: unknown section 'planer'"),
    ('task.params.nope=1', '--set task.params.nope: unknown key'),
    ('planners.mppi.elites=1', '--set planners.mppi.elites: unknown key'),
    ('rollout.threads.x=1', '--set rollout.threads.x: rollout.threads has no keys'),
    ('apex.iterations=many', '--set apex.iterations: expected an integer'),
    ('apex.iterations=0', '--set apex.iterations: must be >= 1'),
    ('train.hidden=big', '--set train.hidden: expected a list'),
    ('seed=abc', '--set seed: expected an integer'),
    ('planner.budget', '--set planner.budget: write section.key=value'),
    ('planner..budget=3', 'write section.key=value'),
    ('planner.sigma=[1', '--set planner.sigma: value'),
])
def test_a_bad_set_names_it(write, item, named):
    with pytest.raises(ConfigError) as err:
        load_run_config(path=write(VALID), sets=[item])
    assert named in str(err.value)


def test_split_sets_of_a_launch_argument():
    from apex_ros.config.layers import split_sets
    assert split_sets('apex.iterations=3,planner.budget=60') == [
        'apex.iterations=3', 'planner.budget=60']
    assert split_sets('train.hidden=[64, 64]; seed=2 ;') == ['train.hidden=[64, 64]', 'seed=2']
    assert split_sets('') == [] and split_sets("''") == []


# --- schedules ----------------------------------------------------------------------------------

SCHEDULED = VALID + """\
schedule:
  - from_iteration: 3
    set: {planner.sigma: 0.2, apex.expert_action_noise: 0.15}
  - from_iteration: 5
    set: {train.reinit: true, planner.sigma: 0.1}
"""


def test_schedule_applies_cumulatively_from_its_iterations(write):
    cfg = load_run_config(path=write(SCHEDULED))
    assert [e.from_iteration for e in cfg.schedule] == [3, 5]
    assert cfg.at_iteration(1) is cfg and cfg.at_iteration(2).planner.sigma == 0.5
    third = cfg.at_iteration(3)
    assert (third.planner.sigma, third.apex.expert_action_noise, third.train.reinit) == (
        0.2, 0.15, False)
    for later in (cfg.at_iteration(5), cfg.at_iteration(100), third.at_iteration(6)):
        assert (later.planner.sigma, later.apex.expert_action_noise, later.train.reinit) == (
            0.1, 0.15, True)
    assert third.at_iteration(1).planner.sigma == 0.5   # from the unscheduled config
    assert third.schedule == cfg.schedule and third.planner.budget == 80
    assert cfg.to_dict()['schedule'][0] == {
        'from_iteration': 3, 'set': {'planner.sigma': 0.2, 'apex.expert_action_noise': 0.15}}
    mppi = load_run_config(path=write(SCHEDULED.replace('{planner.sigma: 0.2, ', '{')
                                      .replace(', planner.sigma: 0.1', '')), planner='mppi')
    fifth = mppi.at_iteration(5)
    assert fifth.train.reinit is True and fifth.planner_name == 'mppi'


def test_a_schedule_in_a_base_file(tmp_path):
    (tmp_path / 'base.yaml').write_text(SCHEDULED)
    child = tmp_path / 'child.yaml'
    child.write_text('base: base.yaml\nplanner:\n  sigma: 0.4\n')
    cfg = load_run_config(path=child)
    assert cfg.planner.sigma == 0.4 and cfg.at_iteration(3).planner.sigma == 0.2


@pytest.mark.parametrize('schedule, named', [
    ('schedule: {from_iteration: 3}', 'schedule: expected a list'),
    ('schedule:\n  - from_iteration: 0\n    set: {planner.sigma: 0.2}',
     'schedule[0].from_iteration: expected an APEX iteration >= 1'),
    ('schedule:\n  - from_iteration: 4\n    set: {planner.sigma: 0.2}\n'
     '  - from_iteration: 2\n    set: {planner.sigma: 0.1}',
     'schedule[1].from_iteration: entries must be in increasing'),
    ('schedule:\n  - from_iteration: 2\n    sett: {planner.sigma: 0.2}',
     'schedule[0]: unknown key(s) sett'),
    ('schedule:\n  - from_iteration: 2\n    set: {}', 'schedule[0].set: expected a mapping'),
    ('schedule:\n  - from_iteration: 2\n    set: {planner.sigm: 0.2}',
     'schedule[0].set.planner.sigm: unknown key'),
    ('schedule:\n  - from_iteration: 2\n    set: {planner.sigma: 0.2}\n'
     '  - from_iteration: 3\n    set: {planner.sigm: 0.2}',
     'schedule[1].set.planner.sigm: unknown key'),
    ('schedule:\n  - from_iteration: 2\n    set: {planner.sigma: fast}',
     'schedule[0].set.planner.sigma: expected a number'),
    ('schedule:\n  - from_iteration: 2\n    set: {apex.window: 0}',
     'schedule[0].set.apex.window: must be >= 1'),
    ('schedule:\n  - from_iteration: 2\n    set: {apex.iterations: 20}',
     'schedule[0].set.apex.iterations: cannot change during a run'),
    ('schedule:\n  - from_iteration: 2\n    set: {rollout.threads: 2}',
     'schedule[0].set.rollout.threads: only planner, apex, train'),
    ('schedule:\n  - from_iteration: 2\n    set: {planner: {sigma: 0.2}}',
     'schedule[0].set.planner: write section.key'),
])
def test_a_bad_schedule_is_named_at_load(write, schedule, named):
    path = write(VALID + schedule + '\n')
    msg = config_error(path)
    assert f'{path}: {named}' in msg


# --- config_differences -------------------------------------------------------------------------

def test_config_differences_lists_changed_added_and_removed_keys(write):
    from apex_ros.config.diff import config_differences
    old = load_run_config(path=write(VALID)).to_dict()
    assert config_differences(old, old) == []
    new = load_run_config(path=write(VALID), sets=['planner.sigma=0.2', 'train.reinit=true',
                                                   'train.hidden=[64]']).to_dict()
    assert config_differences(old, new) == [
        'planner.sigma: 0.5 -> 0.2', 'train.hidden: [128, 128, 128] -> [64]',
        'train.reinit: false -> true']
    assert config_differences({'a': {'b': 1, 'c': 'x'}}, {'a': {'b': 1, 'd': None}}) == [
        'a.d: (absent) -> null', "a.c: 'x' -> (absent)"]
    assert config_differences({'schedule': []}, {'schedule': [{'from_iteration': 2}]}) == [
        "schedule: [] -> [{'from_iteration': 2}]"]
