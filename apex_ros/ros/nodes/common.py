"""What every apex_ros node shares: main() (init, build, spin single-threaded, shut down) and
the std_msgs form of the protocol's layouts."""
import sys

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from std_msgs.msg import Float64MultiArray, MultiArrayDimension

from ...errors import ApexError
from ..protocol import MultiArray


def float64_array(packed: MultiArray) -> Float64MultiArray:
    """A protocol layout (apex_ros.ros.protocol.pack_*) as a Float64MultiArray, its segments
    labelled in layout.dim."""
    msg = Float64MultiArray(data=packed.data)
    if packed.dims:
        msg.layout.dim = [MultiArrayDimension(label=label, size=size, stride=size)
                          for label, size in packed.dims]
    return msg


def spin(node_factory, argv=None, executor_factory=SingleThreadedExecutor) -> int:
    """Init rclpy, build the node, spin it on a SingleThreadedExecutor (or what
    executor_factory makes) until shutdown.

    A bad parameter or config (ApexError/ValueError at construction) is reported in one line
    and exits with status 2, so a launcher sees the node fail."""
    rclpy.init(args=argv if argv is not None else sys.argv)
    node, status = None, 0
    try:
        node = node_factory()
        executor = executor_factory()
        executor.add_node(node)
        finished = getattr(node, 'finished', None)  # a threading.Event ends the spin cleanly
        while rclpy.ok() and not (finished is not None and finished.is_set()):
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ApexError, ValueError) as e:
        print(f'{getattr(node_factory, "__name__", "node")}: error: {e}', file=sys.stderr)
        status = 2
    finally:
        if node is not None:
            on_exit = getattr(node, 'on_shutdown', None)
            if on_exit is not None:
                on_exit()
            node.destroy_node()
        rclpy.try_shutdown()
    return status
