"""mpp.datagen."""
