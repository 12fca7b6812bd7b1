"""bendi (本地): DeepSeek models on your own hardware in one command."""

__version__ = "0.1.0"
