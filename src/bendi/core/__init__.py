"""Foundation shared by every layer: settings, paths, errors, units, logging."""
