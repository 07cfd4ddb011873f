"""Training: configuration, the training loop (workspace), learning-rate schedule, feature cache and logging."""
