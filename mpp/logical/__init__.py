"""mpp.logical."""
