"""mpp.scenario."""
