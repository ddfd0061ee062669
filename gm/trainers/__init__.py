"""One trainer per model family: owns networks, optimizers and RNG; train_step returns metrics; no I/O."""
