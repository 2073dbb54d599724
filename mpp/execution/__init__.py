"""mpp.execution."""
