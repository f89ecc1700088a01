"""The ROS 2 side: the protocol (names, QoS, message layouts), the node graphs as plain data,
the launcher, and the nodes (the only modules importing rclpy)."""
