"""`apex-ros`: --set and the shorthand flags reach the one config loader on every command that
takes a config; a bad key or count is named before any work; --help stays complete."""
import json
import subprocess
import sys

import pytest
import rosutil  # noqa: F401 (isolates the ROS domain of the launch test's nodes)
import yaml

from apex_ros import cli
from apex_ros.cli.common import load_config
from apex_ros.resources import config_path

# argv of each command that takes a config, up to its own options (files need not exist:
# the config is loaded before anything is read)
COMMANDS = {
    'mpc': ['mpc'],
    'train': ['train', '--out', 'run'],
    'eval': ['eval', '--expert'],
    'polo': ['polo', '--out', 'v.onnx'],
    'relabel': ['relabel', 'bag', '--policy', 'p.onnx', '--out', 's.npz'],
    'bench planner': ['bench', 'planner', '--json', 'b.json'],
    'bench apex': ['bench', 'apex', '--json', 'b.json'],
    'bench graph': ['bench', 'graph', '--json', 'b.json'],
}


def run_cli(argv, capsys):
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def parsed(argv):
    return cli.build_parser().parse_args(argv)


@pytest.mark.parametrize('command', sorted(COMMANDS))
def test_set_and_shorthands_reach_the_config_of_every_command(command):
    argv = COMMANDS[command] + ['--set', 'apex.window=7', '--set', 'train.hidden=[32, 16]',
                                '--set', 'task.params.control_weight=0.3', '--seed', '5']
    args = parsed(argv)
    cfg = load_config(args, planner='polo' if command == 'polo' else None)
    assert (cfg.apex.window, cfg.train.hidden, cfg.seed) == (7, [32, 16], 5)
    assert cfg.task.params.control_weight == 0.3
    if command not in ('bench graph', 'polo'):
        cfg = load_config(parsed(COMMANDS[command] + ['--budget', '64', '--threads', '2',
                                                      '--set', 'planner.budget=70']))
        assert (cfg.planner.budget, cfg.rollout.threads) == (70, 2)   # --set after shorthands
        cfg = load_config(parsed(COMMANDS[command] + ['--budget', '64']))
        assert cfg.planner.budget == 64


@pytest.mark.parametrize('command', ['train', 'bench apex', 'bench graph'])
def test_iterations_is_a_shorthand_for_apex_iterations(command):
    assert load_config(parsed(COMMANDS[command] + ['--iterations', '4'])).apex.iterations == 4


@pytest.mark.parametrize('command', sorted(COMMANDS))
@pytest.mark.parametrize('item, named', [
    ('apex.iteratons=3', '--set apex.iteratons: unknown key'),
    ('apex.iterations=many', '--set apex.iterations: expected an integer'),
])
def test_a_bad_set_fails_every_command_naming_it(command, item, named, capsys, tmp_path,
                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(COMMANDS[command] + ['--set', item], capsys)
    assert code == 2 and named in err, err
    assert not list(tmp_path.iterdir())    # refused before anything was written


def test_mpc_runs_with_set_values(capsys):
    code, out, err = run_cli(['mpc', '--steps', '2', '--quiet', '--set', 'planner.horizon=7',
                              '--set', 'planner.budget=60'], capsys)
    assert code == 0, err
    assert '60 samples/step, horizon 7' in out and '2 steps' in out


def test_bench_planner_records_the_set_budget(tmp_path, capsys):
    out = tmp_path / 'b.json'
    code, _, err = run_cli(['bench', 'planner', '--steps', '2', '--quiet', '--json', str(out),
                            '--set', 'planner.budget=60', '--set', 'planner.horizon=5'],
                           capsys)
    assert code == 0, err
    result = json.loads(out.read_text())
    assert (result['budget'], result['steps']) == (60, 2)


def test_config_without_task_uses_the_files_task(tmp_path):
    path = tmp_path / 'h.yaml'
    path.write_text(f'base: {config_path("halfcheetah_run.yaml")}\nseed: 3\n')
    cfg = load_config(parsed(['mpc', '--config', str(path)]))
    assert cfg.task.name == 'halfcheetah_run' and cfg.seed == 3 and cfg.planner.act == 'mean'


# --- a mistyped key in any section fails `apex-ros mpc` ------------------------------------------

BASE = {'task': {'name': 'cartpole_swingup'}}


@pytest.mark.parametrize('section, value, named', [
    ('task', {'name': 'cartpole_swingup', 'episode_step': 5}, 'task: unknown key(s) episode_step'),
    ('task', {'name': 'cartpole_swingup', 'params': {'control_weigth': 1.0}},
     'task.params: unknown key(s) control_weigth'),
    ('planner', {'horizn': 5}, 'planner: unknown key(s) horizn'),
    ('planners', {'mppi': {'temprature': 1.0}}, 'planners.mppi: unknown key(s) temprature'),
    ('planners', {'mpi': {}}, 'planners.mpi'),
    ('rollout', {'thread': 2}, 'rollout: unknown key(s) thread'),
    ('apex', {'iteratons': 3}, 'apex: unknown key(s) iteratons'),
    ('train', {'hiden': [8]}, 'train: unknown key(s) hiden'),
    ('value', {'member': 3}, 'value: unknown key(s) member'),
    ('seed', {'value': 3}, 'seed: expected an integer'),
    ('schedule', [{'from_iteration': 2, 'set': {'train.reinti': True}}],
     'schedule[0].set.train.reinti: unknown key'),
    ('apex_settings', {'iterations': 3}, 'unknown section(s) apex_settings'),
])
def test_a_mistyped_key_in_any_section_fails_mpc(tmp_path, capsys, section, value, named):
    path = tmp_path / 'run.yaml'
    path.write_text(yaml.safe_dump({**BASE, section: value}))
    code, out, err = run_cli(['mpc', '--config', str(path), '--steps', '1'], capsys)
    assert code == 2 and f'{path}: {named}' in err, err
    assert 'MPC:' not in out


# --- counts -------------------------------------------------------------------------------------

@pytest.mark.parametrize('argv, flag', [
    (['mpc', '--episodes', '0'], '--episodes'),
    (['mpc', '--episodes', '-2'], '--episodes'),
    (['mpc', '--steps', '-1'], '--steps'),
    (['mpc', '--steps', '0'], '--steps'),
    (['eval', '--expert', '--episodes', '0'], '--episodes'),
    (['eval', '--expert', '--episodes', '-1'], '--episodes'),
    (['train', '--out', 'r', '--iterations', '0'], '--iterations'),
    (['bench', 'apex', '--json', 'b', '--iterations', '0'], '--iterations'),
    (['bench', 'planner', '--json', 'b', '--steps', '0'], '--steps'),
    (['bench', 'inference', '--policy', 'p', '--json', 'b', '--calls', '0'], '--calls'),
    (['mpc', '--budget', '0'], '--budget'),
    (['mpc', '--threads', '0'], '--threads'),
    (['polo', '--out', 'v', '--steps', '0'], '--steps'),
    (['relabel', 'b', '--policy', 'p', '--out', 'o', '--workers', '0'], '--workers'),
    (['mpc', '--episodes', 'two'], '--episodes'),
])
def test_impossible_counts_are_refused_naming_the_flag(argv, flag, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f'argument {flag}:' in err and ('must be >= 1' in err or 'expected an integer' in err)


# --- help ---------------------------------------------------------------------------------------

def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(['--help'])
    out = capsys.readouterr().out
    for command in ('tasks', 'mpc', 'train', 'eval', 'polo', 'launch', 'record', 'relabel',
                    'view', 'bench'):
        assert f'    {command} ' in out, command


@pytest.mark.parametrize('argv', [COMMANDS[c][:2] if c.startswith('bench') else COMMANDS[c][:1]
                                  for c in sorted(COMMANDS)])
def test_each_config_command_documents_set(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv + ['--help'])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert '--set SECTION.KEY=VALUE' in out and '--config' in out and '--task' in out


def test_train_documents_allow_config_change(capsys):
    with pytest.raises(SystemExit):
        cli.main(['train', '--help'])
    assert '--allow-config-change' in capsys.readouterr().out


# --- launch set:= -------------------------------------------------------------------------------

def test_launch_set_reaches_the_nodes_as_one_parameter(capsys):
    code, out, err = run_cli(['launch', 'sim_apex', 'set:=apex.iterations=3,planner.budget=60',
                              'allow_config_change:=true', '--print'], capsys)
    assert code == 0, err
    lines = {line.split()[0].rsplit('/', 1)[-1]: line for line in out.splitlines()}
    for node in ('sim_node', 'planner_node', 'trainer_node'):
        assert '-p set:=apex.iterations=3,planner.budget=60' in lines[node], node
    assert '-p allow_config_change:=true' in lines['trainer_node']


@pytest.mark.slow
def test_launch_with_a_bad_set_fails_naming_it(tmp_path):
    out = subprocess.run([sys.executable, '-m', 'apex_ros.cli', 'launch', 'sim_apex',
                          'set:=planner.budget=60;apex.iteratons=3', f'out_dir:={tmp_path}'],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert '--set apex.iteratons: unknown key' in out.stdout + out.stderr


def test_expert_baseline_resumes_and_refuses_other_settings(tmp_path, capsys):
    """benchmarks/expert_baseline.py --resume continues after the episodes a JSON holds
    (the same figures as one run), and refuses a JSON measured with other settings, naming
    them."""
    import importlib.util
    import json
    from pathlib import Path
    path = Path(__file__).parent.parent / 'benchmarks' / 'expert_baseline.py'
    spec = importlib.util.spec_from_file_location('expert_baseline', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    base = ['--task', 'cartpole_swingup', '--set', 'task.episode_steps=4', '--budget', '60']
    one, split = tmp_path / 'one.json', tmp_path / 'split.json'
    module.main([str(one), *base, '--episodes', '2'])
    module.main([str(split), *base, '--episodes', '1', '--resume'])
    module.main([str(split), *base, '--episodes', '2', '--resume'])
    whole, resumed = json.loads(one.read_text()), json.loads(split.read_text())
    assert [e['seed'] for e in resumed['episodes']] == [1000, 1001]
    assert [e['return'] for e in resumed['episodes']] == [e['return'] for e in whole['episodes']]
    with pytest.raises(SystemExit):
        module.main([str(split), *base[:-1], '70', '--episodes', '3', '--resume'])
    assert 'measured with other settings (budget: 60 -> 70' in capsys.readouterr().err
    # a JSON written before a task setting existed resumes while that setting is at its default
    older = json.loads(split.read_text())
    del older['identity']['task_params']['success_cos']
    split.write_text(json.dumps(older))
    module.main([str(split), *base, '--episodes', '3', '--resume'])
    assert [e['seed'] for e in json.loads(split.read_text())['episodes']] == [1000, 1001, 1002]
    split.write_text(json.dumps(older))
    with pytest.raises(SystemExit):
        module.main([str(split), *base, '--set', 'task.params.success_cos=0.9',
                     '--episodes', '3', '--resume'])
    assert 'task_params.success_cos: 0.95 -> 0.9' in capsys.readouterr().err
