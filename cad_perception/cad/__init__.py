"""CAD meshes: I/O and normalisation, voxelisation, procedural library and the CAD database."""
