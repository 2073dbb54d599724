"""mpp.storage."""
