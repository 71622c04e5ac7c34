"""Synthetic data: ray-cast renderer, scene generator, dataset and rosbag writers."""
