"""dinno_core: distributed neural-network training (DiNNO, DSGD, DSGT) without ROS.

The library keeps a robot axis in every tensor: an algorithm steps ``R`` robots at once,
``R = N`` in the in-process simulated team and ``R = 1`` inside one ROS robot node.
"""

__version__ = "0.1.0"
