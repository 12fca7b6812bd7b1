"""Running a model: the Engine seam, the internal message dialect, and the engines behind it."""
