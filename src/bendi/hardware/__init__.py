"""What this machine has: CPU, RAM, disk, GPUs, as frozen dataclasses with a JSON round-trip."""
