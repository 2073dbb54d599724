"""mpp.optimizer."""
