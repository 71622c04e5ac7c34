"""Offline evaluation: alignment records, the Scan2CAD alignment-accuracy scorer, ROCA's 3D NMS.

Modules: `records` (loading and validating JSON alignment records), `pose_errors` (translation,
symmetry-aware rotation and scale errors between poses), `scan2cad` (the scorer), `nms` (merging
duplicate predictions), `errors` (the exceptions this subpackage raises on bad input).
"""
