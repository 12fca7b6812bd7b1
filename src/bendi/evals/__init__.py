"""`bendi eval`: run a question suite against models, presets and knowledge bases; score and report."""
