"""Estimate the memory a LoRA run needs before starting it, and refuse one that will not fit.

A CPU run that swaps takes hours and may take the machine with it; a refusal with the numbers
and what to change is kinder. The estimate is deliberately simple (fp32 weights, activations per
token, logits) and errs high.
"""

from __future__ import annotations

from dataclasses import dataclass

from bendi.core.errors import ModelTooLargeError

GIB = 2**30
FP32 = 4
# Per token per layer, a decoder's saved activations for backward are ~ 16-20 hidden-size vectors
# plus the MLP's intermediate ones; 24 hidden-size fp32 values is a safe round figure.
ACTIVATION_VECTORS_PER_LAYER = 24
LOGIT_COPIES = 3  # logits, their fp32 softmax, and its gradient all exist at once
OVERHEAD_BYTES = 1 * GIB  # torch, the tokenizer, the interpreter


@dataclass(frozen=True)
class ModelShape:
    parameter_count: int
    layers: int
    hidden: int
    vocab: int


@dataclass(frozen=True)
class MemoryEstimate:
    weights_bytes: int
    lora_bytes: int  # adapter weights + their gradients + AdamW's two moments
    activations_bytes: int
    total_bytes: int

    def describe(self) -> str:
        return (
            f"about {self.total_bytes / GIB:.1f} GiB (weights {self.weights_bytes / GIB:.1f}, "
            f"activations {self.activations_bytes / GIB:.1f}, adapter+optimizer {self.lora_bytes / GIB:.2f})"
        )


def estimate(shape: ModelShape, *, rank: int, batch_size: int, max_length: int) -> MemoryEstimate:
    weights = shape.parameter_count * FP32  # a GGUF is dequantized to fp32 for training
    # Seven projections per layer (q, k, v, o, gate, up, down), each with A and B of `rank` columns.
    lora_params = shape.layers * 7 * 2 * rank * shape.hidden * 2
    lora = lora_params * FP32 * 4
    tokens = batch_size * max_length
    activations = (
        tokens
        * FP32
        * (shape.layers * shape.hidden * ACTIVATION_VECTORS_PER_LAYER + shape.vocab * LOGIT_COPIES)
    )
    total = weights + lora + activations + OVERHEAD_BYTES
    return MemoryEstimate(weights, lora, activations, total)


def refuse_unless_fits(needed: MemoryEstimate, available_bytes: int) -> None:
    """Raise ModelTooLargeError saying what to change when the run needs more than is free."""
    if needed.total_bytes <= available_bytes:
        return
    raise ModelTooLargeError(
        f"This tuning run needs {needed.describe()}, but only {available_bytes / GIB:.1f} GiB of memory "
        "is available. Lower --batch-size or --max-length, pick a smaller base model, or close "
        "other programs."
    )
