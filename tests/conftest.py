"""Shared test set-up."""

import os
import random

# Keep DDS traffic of concurrent test runs apart: one random domain per run unless one is given.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 101)))
