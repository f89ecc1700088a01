"""The ROS package: package.xml lists what the code imports from ROS, and `colcon build` of the
checkout into a temporary workspace (as the README's Jazzy section does) gives an install space
whose executor configures with a bundle."""
import ast
import importlib.metadata
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import rclpy
import rosutil  # noqa: I100 (first: isolates the ROS domain before rclpy.init)
import torch
from lifecycle_msgs.msg import State  # noqa: E402
from lifecycle_msgs.srv import GetState  # noqa: E402

import apex_ros
from apex_ros.deploy.export import export_bundle
from apex_ros.learning.student import MLPPolicy

SOURCE_ROOT = Path(apex_ros.__file__).resolve().parent.parent
# what colcon needs from the checkout (README: the clone in ws/src/apex_ros)
PACKAGE_FILES = ('package.xml', 'setup.py', 'setup.cfg', 'resource', 'apex_ros', 'launch',
                 'config', 'models')
EXECUTABLES = ('apex-ros', 'sim_node', 'planner_node', 'trainer_node', 'policy_executor',
               'recorder_node', 'viz_node')


def exec_depends() -> set:
    root = ET.parse(SOURCE_ROOT / 'package.xml').getroot()
    return {e.text.strip() for e in root.iter('exec_depend')}


def imported_top_level_modules() -> set:
    names = set()
    files = [*(SOURCE_ROOT / 'apex_ros').rglob('*.py'), *(SOURCE_ROOT / 'launch').glob('*.py')]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split('.')[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split('.')[0])
    return names - set(sys.stdlib_module_names) - {'apex_ros'}


def test_package_xml_lists_exactly_the_ros_packages_the_code_imports():
    """A ROS package is one the ROS wheels (ros-*) provide here, or that no distribution here
    provides (launch, launch_ros: only a ROS install has them); python3-* keys name
    pip-installable modules that are imported."""
    distributions = importlib.metadata.packages_distributions()
    ros = {name for name in imported_top_level_modules()
           if name not in distributions
           or any(d.startswith('ros-') for d in distributions[name])}
    depends = exec_depends()
    assert ros == {d for d in depends if not d.startswith('python3-')}
    python_keys = {d.removeprefix('python3-') for d in depends if d.startswith('python3-')}
    assert python_keys <= imported_top_level_modules()


@pytest.fixture
def node():
    rclpy.init()
    n = rclpy.create_node('colcon_test')
    yield n
    n.destroy_node()
    rclpy.shutdown()


def sourced_environment(setup_script: Path) -> dict:
    """os.environ after `. setup_script` in sh."""
    out = subprocess.run(['sh', '-c', f'. "{setup_script}" && env -0'], capture_output=True,
                         check=True)
    return dict(item.split('=', 1) for item in out.stdout.decode().split('\0') if '=' in item)


@pytest.mark.slow
def test_colcon_build_installs_a_package_whose_executor_runs_a_bundle(tmp_path, node, cartpole):
    ws = tmp_path / 'ws'
    source = ws / 'src' / 'apex_ros'
    source.mkdir(parents=True)
    for name in PACKAGE_FILES:
        (source / name).symlink_to(SOURCE_ROOT / name)
    out = subprocess.run([sys.executable, '-m', 'colcon', 'build'], cwd=ws, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    install = ws / 'install' / 'apex_ros'
    share = install / 'share' / 'apex_ros'
    for folder, pattern in (('launch', '*.launch.py'), ('config', '*.yaml'), ('models', '*.xml')):
        installed = sorted(p.name for p in (share / folder).glob(pattern))
        assert installed == sorted(p.name for p in (SOURCE_ROOT / folder).glob(pattern))
    assert (share / 'package.xml').is_file()
    assert (install / 'share' / 'ament_index' / 'resource_index' / 'packages' /
            'apex_ros').is_file()
    for name in EXECUTABLES:
        script = install / 'lib' / 'apex_ros' / name
        assert os.access(script, os.X_OK), name
        assert script.read_text().splitlines()[0] == f'#!{sys.executable}', name

    # the sourced install space: its own copy of the code and its share directory
    env = sourced_environment(ws / 'install' / 'setup.sh')
    assert str(install) in env['AMENT_PREFIX_PATH'].split(os.pathsep)
    env.pop('APEX_ROS_TEST_DOMAIN_ID', None)
    where = subprocess.run(
        [sys.executable, '-c', 'import apex_ros, apex_ros.resources as r; '
         'print(apex_ros.__file__); print(r.share_dir())'],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert Path(where[0]).is_relative_to(install) and Path(where[1]) == share, where

    bundle = tmp_path / 'policy.onnx'
    model = MLPPolicy(cartpole.obs_dim, cartpole.nu, hidden=())
    with torch.no_grad():
        model.mlp[0].weight.zero_()
    export_bundle(model, cartpole, bundle, iteration=1)
    log = tmp_path / 'executor.log'
    with open(log, 'w') as log_file:
        proc = subprocess.Popen(
            [str(install / 'lib' / 'apex_ros' / 'policy_executor'), '--ros-args',
             '-r', '__node:=colcon_executor', '-p', f'bundle:={bundle}', '-p', 'autostart:=true'],
            cwd=tmp_path, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True)     # stop_node signals its process group
    try:
        client = node.create_client(GetState, '/colcon_executor/get_state')

        def active():
            response = rosutil.call(client, GetState.Request(), timeout=5.0, spin=node)
            return (response is not None
                    and response.current_state.id == State.PRIMARY_STATE_ACTIVE)
        assert rosutil.wait_for(active, 60, spin=node), log.read_text()
    finally:
        assert rosutil.stop_node(proc) == 0, log.read_text()


def test_readme_jazzy_section_builds_as_this_test_does():
    """The README's Jazzy commands: the clone in ws/src/apex_ros, colcon run by the venv's
    python, the install space sourced; the test above does the same."""
    text = (SOURCE_ROOT / 'README.md').read_text()
    section = text[text.index('## On a ROS 2 Jazzy machine'):]
    section = section[:section.index('\n## ', 3)]
    assert 'git clone <this repo> ~/ws/src/apex_ros' in section
    assert 'cd ~/ws && python -m colcon build && . install/setup.sh' in section
    assert 'ros2 launch apex_ros policy.launch.py' in section
