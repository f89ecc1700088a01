"""A user's own robot: a task package built outside the source tree, installed with pip into a
temporary path, registered through the `apex_ros.tasks` entry-point group, with its model and
config beside its module; `tasks`, `mpc`, `train` and the sim graph take it by name, from a
working directory that is neither package's."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import apex_ros

pytestmark = pytest.mark.slow   # pip install and CLI subprocesses
SOURCE_ROOT = Path(apex_ros.__file__).resolve().parent.parent
TASK_NAME = 'my_slider_reach'

PYPROJECT = """\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "my-robot"
version = "0.1.0"

[project.entry-points."apex_ros.tasks"]
my_slider_reach = "my_robot.tasks:SliderReach"
my_arm_reach = "my_robot.tasks:ArmReach"
my_broken = "my_robot.tasks:Missing"

[tool.setuptools]
packages = ["my_robot"]

[tool.setuptools.package-data]
my_robot = ["*.xml", "*.yaml"]
"""

TASKS_PY = '''\
"""A slider that must stop at a goal position, from a start drawn at reset."""
import dataclasses

import mujoco
import numpy as np

from apex_ros.tasks import Task
from apex_ros.tasks.ur5e_reach import UR5eReach


class ArmReach(UR5eReach):
    """apex_ros's arm (its model, inherited) with a longer episode."""
    name = 'my_arm_reach'
    episode_steps = 200


class SliderReach(Task):
    name = 'my_slider_reach'
    model_file = 'slider.xml'          # beside this module
    config_file = 'slider_reach.yaml'  # beside this module
    frame_skip = 5
    episode_steps = 40

    @dataclasses.dataclass
    class Params:
        goal: float = 0.3
        tolerance: float = 0.05

    def reward(self, states, actions):
        return -np.abs(self.qpos(states[:, 1:])[..., 0] - self.params.goal)

    def reset(self, data, rng):
        mujoco.mj_resetData(self.model, data)
        data.qpos[0] = rng.uniform(-0.5, 0.5)
        mujoco.mj_forward(self.model, data)

    def success(self, states):
        return bool(abs(self.qpos(states[-1])[0] - self.params.goal) < self.params.tolerance)
'''

SLIDER_XML = """\
<mujoco model="slider">
  <option timestep="0.01"/>
  <worldbody>
    <body name="cart">
      <joint name="slide" type="slide" axis="1 0 0" damping="2"/>
      <geom type="box" size="0.1 0.1 0.1" mass="1"/>
    </body>
  </worldbody>
  <actuator>
    <motor joint="slide" ctrlrange="-5 5" ctrllimited="true"/>
  </actuator>
</mujoco>
"""

CONFIG_YAML = """\
# the package's own default config: differences from apex_ros's dataclass defaults only
task:
  name: my_slider_reach
planner:
  horizon: 10
  budget: 30
  elites: 5
rollout:
  threads: 1
"""

TINY_RUN = ['apex.eval_episodes=1', 'train.steps=50',
            'train.batch_size=64', 'train.threads=1', 'task.episode_steps=15']


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """The package built in a temporary directory and `pip install --target`ed into another;
    -> (environment with that target on PYTHONPATH, a working directory of neither)."""
    root = tmp_path_factory.mktemp('own_robot')
    pkg = root / 'my_robot_src'
    (pkg / 'my_robot').mkdir(parents=True)
    (pkg / 'pyproject.toml').write_text(PYPROJECT)
    (pkg / 'my_robot' / '__init__.py').write_text('')
    (pkg / 'my_robot' / 'tasks.py').write_text(TASKS_PY)
    (pkg / 'my_robot' / 'slider.xml').write_text(SLIDER_XML)
    (pkg / 'my_robot' / 'slider_reach.yaml').write_text(CONFIG_YAML)
    target = root / 'site'
    out = subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps',
                          '--no-build-isolation', '--target', str(target), str(pkg)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert not (target / 'my_robot' / 'tasks.py').samefile(pkg / 'my_robot' / 'tasks.py')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(target), str(SOURCE_ROOT)] + os.environ.get('PYTHONPATH', '').split(os.pathsep)))
    work = root / 'work'
    work.mkdir()
    return env, work, target


def cli(installed, *args, timeout=300):
    env, work, _ = installed
    return subprocess.run([sys.executable, '-m', 'apex_ros.cli', *args], cwd=work, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_tasks_lists_it_and_mpc_loads_its_model_and_config(installed):
    out = cli(installed, 'tasks')
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith(TASK_NAME))
    assert line.split()[1:5] == ['2', '1', '20.0', '40'], line    # obs act rate steps
    assert str(installed[2] / 'my_robot' / 'slider.xml') in line    # the installed copy
    assert "my_broken            cannot load: task 'my_broken' (entry point " \
        "my_robot.tasks:Missing" in out.stdout
    line = next(x for x in out.stdout.splitlines() if x.startswith('my_arm_reach'))
    assert line.split()[1:] == ['15', '6', '50.0', '200', 'ur5e.xml'], line  # apex_ros's model
    out = cli(installed, 'mpc', '--task', TASK_NAME, '--episodes', '2', '--quiet',
              '--json', 'mpc.json')
    assert out.returncode == 0, out.stderr
    assert re.search(r'icem on my_slider_reach, \d+ samples/step, horizon 10,', out.stdout)
    assert str(installed[2] / 'my_robot' / 'slider_reach.yaml') in out.stdout
    result = json.loads((installed[1] / 'mpc.json').read_text())
    assert result['task'] == TASK_NAME and result['success_rate'] == 1.0, result


def test_a_wrong_class_or_missing_module_is_named(installed):
    out = cli(installed, 'mpc', '--task', 'my_robot.tasks:Nope', '--quiet')
    assert out.returncode != 0 and "cannot load 'Nope' from module 'my_robot.tasks'" in \
        out.stderr, out.stderr


@pytest.mark.slow
def test_train_and_the_sim_graph_run_it(installed):
    from apex_ros.deploy.bundle import PolicyBundle
    out = cli(installed, 'train', '--task', TASK_NAME, '--out', 'run', '--iterations', '1',
              '--quiet', *[f'--set={s}' for s in TINY_RUN])
    assert out.returncode == 0, out.stdout + out.stderr
    bundle = PolicyBundle(installed[1] / 'run' / 'policy.onnx')
    assert bundle.meta['task'] == TASK_NAME
    obs = np.zeros((1, 2), dtype=np.float32)
    assert np.all(np.isfinite(bundle(obs)))
    out = cli(installed, 'launch', 'sim_apex', f'task:={TASK_NAME}', 'out_dir:=graph',
              'iterations:=1', 'set:=' + ','.join(TINY_RUN), timeout=400)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert re.search(r'expert return \S+ vs policy return \S+ \(executor driving',
                     out.stdout + out.stderr)
    assert PolicyBundle(installed[1] / 'graph' / 'policy.onnx').meta['task'] == TASK_NAME
