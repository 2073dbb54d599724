"""mpp.metrics."""
