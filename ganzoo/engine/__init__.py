"""The shared training engine: one loop, AMP, EMA, checkpoints, logging and DDP for every plugin."""
