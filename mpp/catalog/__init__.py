"""mpp.catalog."""
