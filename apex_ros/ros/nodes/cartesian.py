"""A Cartesian command interface (apex_ros.deploy.command) as ROS messages, both ways.

The policy executor and the planner turn a command vector into the interface's messages; the
simulation node turns them back into the task's action. Imports only numpy, rclpy messages and
apex_ros.deploy.command (the executor's import rule).
"""
import array
import math

import numpy as np
from geometry_msgs.msg import Point, Pose, PoseStamped, Quaternion, Twist, TwistStamped, Vector3
from std_msgs.msg import Float64MultiArray, Header

from ...deploy.command import CommandInterface

TWIST = 'geometry_msgs/TwistStamped'
MESSAGES = {TWIST: TwistStamped, 'geometry_msgs/PoseStamped': PoseStamped}


class CartesianCodec:
    """Messages of a cartesian `interface` commanded at `control_rate` (Hz): a command's
    displacement is per control step (a twist carries it as a velocity)."""

    def __init__(self, interface: CommandInterface, control_rate: float):
        self.interface, self.rate = interface, control_rate
        self.index, self.axes = (list(i) for i in zip(*interface.motion_axes))
        self.gripper = interface.gripper
        self.message_type = MESSAGES[interface.message]
        self._gripper_msg = Float64MultiArray()  # refilled: publish() serializes at once

    def to_messages(self, command: np.ndarray, stamp) -> tuple:
        """command (n,) in action units -> (TwistStamped | PoseStamped, the gripper's
        Float64MultiArray or None); `stamp` a builtin_interfaces Time."""
        interface = self.interface
        displacement = np.zeros(6)
        displacement[self.axes] = command[self.index] * interface.scale
        header = Header(stamp=stamp, frame_id=interface.frame)
        gripper = None
        if self.gripper is not None:
            gripper = self._gripper_msg
            gripper.data = array.array('d', command[self.gripper:self.gripper + 1].tobytes())
        if self.message_type is TwistStamped:
            v = displacement * self.rate
            return TwistStamped(header=header, twist=Twist(
                linear=Vector3(x=v[0], y=v[1], z=v[2]),
                angular=Vector3(x=v[3], y=v[4], z=v[5]))), gripper
        d, w = displacement[:3], displacement[3:]
        angle = float(np.linalg.norm(w))  # the rotation vector as a unit quaternion
        axis = w / angle if angle > 0 else w
        s = math.sin(angle / 2)
        return PoseStamped(header=header, pose=Pose(
            position=Point(x=d[0], y=d[1], z=d[2]),
            orientation=Quaternion(x=axis[0] * s, y=axis[1] * s, z=axis[2] * s,
                                   w=math.cos(angle / 2)))), gripper

    def motion(self, msg) -> np.ndarray:
        """The displacement components (in command order, action units) of a TwistStamped or
        PoseStamped; ValueError if its frame is not the interface's."""
        if msg.header.frame_id != self.interface.frame:
            raise ValueError(f'frame_id {msg.header.frame_id!r}, expected '
                             f'{self.interface.frame!r}')
        if self.message_type is TwistStamped:
            t = msg.twist
            displacement = np.array([t.linear.x, t.linear.y, t.linear.z,
                                     t.angular.x, t.angular.y, t.angular.z]) / self.rate
        else:
            p, q = msg.pose.position, msg.pose.orientation
            xyz = np.array([q.x, q.y, q.z])
            norm = float(np.linalg.norm(xyz))
            angle = 2 * math.atan2(norm, q.w)
            rotation = xyz / norm * angle if norm > 0 else np.zeros(3)
            displacement = np.concatenate([[p.x, p.y, p.z], rotation])
        return displacement[self.axes] / self.interface.scale

    def action(self, motion: np.ndarray, gripper_data) -> np.ndarray:
        """The command vector (n,) from `motion` (see motion) and the gripper message's data
        (ignored without a gripper axis); ValueError if the gripper data is not one value."""
        command = np.zeros(len(self.interface.low))
        command[self.index] = motion
        if self.gripper is not None:
            if len(gripper_data) != 1:
                raise ValueError(f'gripper command: expected 1 value, got {len(gripper_data)}')
            command[self.gripper] = gripper_data[0]
        return command
