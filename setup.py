"""ament_python package setup. Dependencies are pinned in requirements.txt, not here:
on a ROS machine rclpy and the messages come from the ROS install, elsewhere scripts/venv
installs requirements.txt."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'apex_ros'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'benchmarks']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', glob('launch/*.py')),
        ('share/' + PACKAGE + '/config', glob('config/*.yaml')),
        ('share/' + PACKAGE + '/models', glob('models/*.xml')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='apex_ros developers',
    maintainer_email='apex-ros@example.org',
    description='APEX policy extraction from an iCEM_pi MuJoCo planner, with ROS 2 nodes.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'apex-ros = apex_ros.cli:main',
            'sim_node = apex_ros.ros.nodes.sim_node:main',
            'planner_node = apex_ros.ros.nodes.planner_node:main',
            'trainer_node = apex_ros.ros.nodes.trainer_node:main',
            'policy_executor = apex_ros.ros.nodes.policy_executor:main',
            'recorder_node = apex_ros.ros.nodes.recorder_node:main',
            'viz_node = apex_ros.ros.nodes.viz_node:main',
        ],
    },
)
