"""Pure tensor/array geometry: camera model, rotations, 9-DoF poses, weighted Procrustes.

Conventions (DESIGN.md): column vectors, points transform as X' = R X + t; camera frame is the
OpenCV / ROS optical frame (x right, y down, z forward) in metres; quaternions are (w, x, y, z)
with w >= 0. Functions are batch-first and raise ValueError on bad shapes.
"""
