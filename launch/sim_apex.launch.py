"""APEX through the ROS graph in simulation: `ros2 launch apex_ros sim_apex.launch.py`.

Built from apex_ros.ros.graph, the same spec `apex-ros launch sim_apex` runs without launch_ros.
"""
from apex_ros.ros.launch_actions import generate_for

GRAPH = 'sim_apex'


def generate_launch_description():
    return generate_for(GRAPH)
