"""Which models exist and what they need: family catalog, memory and speed estimates, the advisor."""
