"""In-process llama.cpp engine with a continuous-batching scheduler."""
