"""Image + intrinsics in, detections with 9-DoF poses and retrieved CAD models out."""
