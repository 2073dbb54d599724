"""mpp.physical."""
