"""The browser view (`apex-ros view`): the task's MuJoCo scene, the planner's predicted plan,
live plots and the run's status on a page served on localhost (viser), fed by the viz node
(apex_ros.ros.nodes.viz_node) or by a recorded bag (replay.py). Never imported by the
executor or the other nodes: the view is a process of its own."""
