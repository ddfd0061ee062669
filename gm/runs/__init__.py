"""Run folders, atomic checkpoints, the training loop and (later) background jobs."""
