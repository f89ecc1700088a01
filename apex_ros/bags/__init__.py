"""rosbag2 bags (MCAP storage, metadata.yaml v9, as ROS 2 Jazzy writes them), without rclpy.

  writer    BagWriter: topics, raw CDR messages, split by size/duration, crash-safe flushes
  reader    BagReader: ours, `ros2 bag record`'s or any ros2-profile MCAP; tolerant of
            killed recordings and damage, says where it stopped
  episodes  load_episodes: MuJoCo states per episode from the full-state topic or by joint
            name from /joint_states, for relabeling (apex_ros.bags.relabel)
  metadata  QoS profiles and metadata.yaml; msgdefs: message definitions and type hashes
The recorder node (apex_ros.ros.nodes.recorder_node) is the thin rclpy adapter around BagWriter.
"""
from .reader import BagMessage, BagReader
from .writer import BagError, BagWriter

__all__ = ['BagError', 'BagMessage', 'BagReader', 'BagWriter']
