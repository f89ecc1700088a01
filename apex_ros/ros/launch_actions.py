"""launch_ros actions from the plain graph spec (used by launch/*.launch.py; needs launch_ros,
which only a ROS install has)."""
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

from .graph import GRAPHS, ros_arguments
from .launcher import resolve_params_file


def node_actions(graph: str, values: dict) -> list:
    make, _ = GRAPHS[graph]
    actions = []
    for spec in make(values):
        actions.append(Node(
            package=spec.package, executable=spec.executable, name=spec.name,
            arguments=list(spec.arguments) or None,
            ros_arguments=ros_arguments(spec) or None,
            parameters=[resolve_params_file(f) for f in spec.params_files],
            remappings=list(spec.remappings) or None,
            output='screen', on_exit=Shutdown() if spec.ends_launch else None))
    return actions


def generate_for(graph: str) -> LaunchDescription:
    _, arguments = GRAPHS[graph]

    def setup(context):
        # Plain strings from here on, exactly what `apex-ros launch` passes.
        values = {a.name: a.check(LaunchConfiguration(a.name).perform(context))
                  for a in arguments}
        return node_actions(graph, values)

    return LaunchDescription(
        [DeclareLaunchArgument(a.name, description=a.description,
                               **({} if a.default is None else {'default_value': a.default}))
         for a in arguments] + [OpaqueFunction(function=setup)])
