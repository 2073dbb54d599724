"""mpp.sql."""
