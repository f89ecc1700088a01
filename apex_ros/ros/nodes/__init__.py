"""ROS 2 nodes: thin adapters around the core (parameters and topics in, core calls,
messages out). Only these modules import rclpy."""
