"""Only the ONNX policy executor, with a robot's parameter file:
`ros2 launch apex_ros policy.launch.py params_file:=/path/robot.yaml bundle:=/path/policy.onnx`
"""
from apex_ros.ros.launch_actions import generate_for

GRAPH = 'policy'


def generate_launch_description():
    return generate_for(GRAPH)
