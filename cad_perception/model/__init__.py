"""The ROCA network, its losses, the training loop and checkpoints."""
