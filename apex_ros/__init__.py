"""apex_ros: APEX policy extraction from an iCEM_pi MuJoCo planner, with ROS 2 nodes.

The core (tasks, rollouts, planners, learning, export) is plain Python and never imports
rclpy; the nodes under apex_ros.ros.nodes are thin adapters around it.
"""
__version__ = '0.1.0'
