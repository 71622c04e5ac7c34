"""cad_perception: single-image CAD model retrieval and 9-DoF alignment (ROCA) for ROS 2."""

__version__ = "0.1.0"
