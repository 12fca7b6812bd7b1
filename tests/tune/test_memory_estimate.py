"""The memory estimate grows with the run's size, and a run that will not fit is refused with a reason."""

from __future__ import annotations

import pytest

from bendi.core.errors import ModelTooLargeError
from bendi.tune.memory import GIB, ModelShape, estimate, refuse_unless_fits

SMOLLM2_135M = ModelShape(parameter_count=134_515_008, layers=30, hidden=576, vocab=49152)


def test_estimate_grows_with_batch_and_length() -> None:
    small = estimate(SMOLLM2_135M, rank=16, batch_size=8, max_length=128)
    large = estimate(SMOLLM2_135M, rank=16, batch_size=32, max_length=1024)
    assert small.weights_bytes == SMOLLM2_135M.parameter_count * 4
    assert large.activations_bytes > 30 * small.activations_bytes
    assert small.total_bytes < 4 * GIB  # the CI run fits a small machine


def test_a_run_that_does_not_fit_is_refused_with_what_to_change() -> None:
    needed = estimate(SMOLLM2_135M, rank=16, batch_size=64, max_length=4096)
    refuse_unless_fits(needed, available_bytes=needed.total_bytes)  # exactly enough is enough
    with pytest.raises(ModelTooLargeError) as caught:
        refuse_unless_fits(needed, available_bytes=2 * GIB)
    assert "only 2.0 GiB" in caught.value.message
    assert "--batch-size" in caught.value.message
