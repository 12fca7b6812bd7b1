"""`bendi tune`: LoRA fine-tuning in a separate training environment, exported as a GGUF adapter."""
