"""bendi's llama.cpp build (patches/llama-cpp-python, scripts/install_llama_cpp.sh): the paired Q4_1
kernel is installed, and it and the other patched kernels (attention in fixed chunks, matmuls of a few
columns) change speed only, never a single bit of the results."""

from __future__ import annotations

import ctypes
import random
import struct
from pathlib import Path

import pytest

from bendi.engines.llamacpp.build_info import (
    GGML_TYPE_Q4_1,
    GGML_TYPE_Q8_1,
    cpu_type_traits,
    lib_dir,
    llama_build,
)
from bendi.hardware.probe import probe


def _has_avx2() -> bool:
    return "avx2" in {flag.lower() for flag in probe().cpu.flags}


def test_installed_build_pairs_q4_1_dot_products() -> None:
    if not _has_avx2():
        pytest.skip("the paired kernel is for x86 CPUs with AVX2")
    build = llama_build()
    assert build.paired_q4_1_dot is True, (
        f"llama-cpp-python {build.version} is a stock build; install bendi's with "
        "`bash scripts/install_llama_cpp.sh` (scripts/test does)"
    )
    assert "+bendi." in build.version
    assert "paired" in build.describe


def _quantize(
    values: list[float], type_id: int, rows: int, n: int, *, activations: bool = False
) -> ctypes.Array:
    """`rows` rows of `n` values in ggml's `type_id`: as weights are quantized, or (Q8_1 always,
    other types with `activations`) as ggml's matmul quantizes its activations, row by row."""
    base = ctypes.CDLL(str(lib_dir() / "libggml-base.so"))
    base.ggml_row_size.restype = ctypes.c_size_t
    base.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
    row = base.ggml_row_size(type_id, n)
    out = ctypes.create_string_buffer(rows * row)
    source = (ctypes.c_float * len(values))(*values)
    if activations or type_id == GGML_TYPE_Q8_1:
        from_float = cpu_type_traits(type_id).from_float
        for r in range(rows):
            from_float(ctypes.cast(ctypes.addressof(source) + 4 * n * r, ctypes.POINTER(ctypes.c_float)),
                       ctypes.addressof(out) + r * row, n)  # fmt: skip
    else:
        base.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                             ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]  # fmt: skip
        base.ggml_quantize_chunk(type_id, source, out, 0, rows, n, None)
    return out


def test_paired_q4_1_dot_is_bit_identical_to_single_dots() -> None:
    traits = cpu_type_traits(GGML_TYPE_Q4_1)
    if traits is None or traits.nrows != 2:
        pytest.skip("this llama.cpp build has no paired Q4_1 kernel")
    rng = random.Random(7)
    for n in (32, 576, 1536):  # one block; SmolLM2's hidden and FFN widths
        for _ in range(40):
            weights = [rng.gauss(rng.uniform(-1, 1), rng.uniform(0.01, 3)) for _ in range(2 * n)]
            activations = [rng.gauss(0, rng.uniform(0.1, 10)) for _ in range(2 * n)]
            w = _quantize(weights, GGML_TYPE_Q4_1, 2, n)
            a = _quantize(activations, GGML_TYPE_Q8_1, 2, n)
            w_row, a_row = len(w) // 2, len(a) // 2
            singles = []
            for col in range(2):
                for row in range(2):
                    out = ctypes.c_float()
                    traits.vec_dot(n, ctypes.byref(out), 0, ctypes.addressof(w) + row * w_row, 0,
                                   ctypes.addressof(a) + col * a_row, 0, 1)  # fmt: skip
                    singles.append(out.value)
            paired = (ctypes.c_float * 32)()
            traits.vec_dot(n, paired, 16, ctypes.addressof(w), w_row, ctypes.addressof(a), a_row, 2)
            got = [paired[0], paired[1], paired[16], paired[17]]  # (r0,c0) (r1,c0) (r0,c1) (r1,c1)
            assert [struct.pack("f", v) for v in got] == [struct.pack("f", v) for v in singles], (
                n,
                got,
                singles,
            )


def test_batched_logits_are_bit_identical_to_each_sequence_alone(smollm2_path: Path) -> None:
    """Batches of 1-9 sequences (odd sizes take the one-pair kernel for the odd column), prompts of
    odd and even lengths: every sequence's logits equal, bit for bit, those it gets decoded alone."""
    import llama_cpp

    from bendi.engines.llamacpp.model import ContextConfig, LlamaModel

    model = LlamaModel(smollm2_path, ContextConfig(256, 9, 512, 2))
    batch = llama_cpp.llama_batch_init(512, 0, 1)

    def decode(spec: list[tuple[int, list[int], int]]) -> list[bytes]:
        n, rows = 0, []
        for seq, tokens, start in spec:
            for j, token in enumerate(tokens):
                batch.token[n], batch.pos[n], batch.n_seq_id[n] = token, start + j, 1
                batch.seq_id[n][0] = seq
                batch.logits[n] = j == len(tokens) - 1
                n += 1
            rows.append(n - 1)
        batch.n_tokens = n
        assert llama_cpp.llama_decode(model.ctx, batch) == 0
        return [
            ctypes.string_at(llama_cpp.llama_get_logits_ith(model.ctx, i), 4 * model.n_vocab) for i in rows
        ]

    prompts = [[1 + (7 * s + 3 * j) % 4000 for j in range(13 + 5 * s)] for s in range(9)]
    try:
        for k in (1, 2, 3, 7, 8, 9):
            llama_cpp.llama_memory_clear(model.memory, True)
            alone = []
            for s in range(k):
                alone.append(decode([(s, prompts[s], 0)])[0])
                alone.append(decode([(s, [42 + s], len(prompts[s]))])[0])
            llama_cpp.llama_memory_clear(model.memory, True)
            first = decode([(s, prompts[s], 0) for s in range(k)])
            second = decode([(s, [42 + s], len(prompts[s])) for s in range(k)])
            together = [row for pair in zip(first, second, strict=True) for row in pair]
            assert together == alone, f"{k} sequences: logits differ from each sequence decoded alone"
    finally:
        llama_cpp.llama_batch_free(batch)
        model.close()


def test_a_verified_token_gets_the_logits_it_gets_when_decoded_alone(smollm2_path: Path) -> None:
    """Patch 0002: a speculative verification (a token and its proposals in one batch) gives each
    token, bit for bit, the logits of decoding it alone, on 2 threads, at KV lengths where the
    verification's view is one padding step longer than the lone decode's (255, 510, 766 cells)."""
    import llama_cpp

    from bendi.engines.llamacpp.model import ContextConfig, LlamaModel

    model = LlamaModel(smollm2_path, ContextConfig(1024, 1, 512, 2))
    batch = llama_cpp.llama_batch_init(512, 0, 1)

    def decode(tokens: list[int], start: int, all_logits: bool) -> list[bytes]:
        for j, token in enumerate(tokens):
            batch.token[j], batch.pos[j], batch.n_seq_id[j] = token, start + j, 1
            batch.seq_id[j][0] = 0
            batch.logits[j] = all_logits or j == len(tokens) - 1
        batch.n_tokens = len(tokens)
        assert llama_cpp.llama_decode(model.ctx, batch) == 0
        rows = range(len(tokens)) if all_logits else [len(tokens) - 1]
        return [
            ctypes.string_at(llama_cpp.llama_get_logits_ith(model.ctx, i), 4 * model.n_vocab) for i in rows
        ]

    rng = random.Random(5)
    try:
        for length in (255, 510, 766):
            prompt = [rng.randrange(1, 4000) for _ in range(length)]
            llama_cpp.llama_memory_clear(model.memory, True)
            for start in range(0, length, 500):
                decode(prompt[start : start + 500], start, False)
            proposals = [rng.randrange(1, 4000) for _ in range(4)]
            alone = [decode([token], length + j, False)[0] for j, token in enumerate(proposals)]
            llama_cpp.llama_memory_seq_rm(model.memory, 0, length, -1)  # roll back, as a rejection does
            verified = decode(proposals, length, True)
            assert verified == alone, f"{length} cells: a verified token's logits differ from its lone decode"
    finally:
        llama_cpp.llama_batch_free(batch)
        model.close()


GGML_TYPE_Q4_0, GGML_TYPE_Q5_0, GGML_TYPE_Q8_0, GGML_TYPE_IQ4_NL = 2, 6, 8, 20


class ComputeParams(ctypes.Structure):
    """ggml-cpu-impl.h `struct ggml_compute_params`."""

    _fields_ = [
        ("ith", ctypes.c_int),
        ("nth", ctypes.c_int),
        ("wsize", ctypes.c_size_t),
        ("wdata", ctypes.c_void_p),
        ("threadpool", ctypes.c_void_p),
        ("use_ref", ctypes.c_bool),
    ]


def _declare_sgemm(library: ctypes.CDLL) -> None:
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    library.llamafile_sgemm.restype = ctypes.c_bool
    library.llamafile_sgemm.argtypes = [ctypes.POINTER(ComputeParams), i64, i64, i64, ptr, i64, ptr, i64, ptr, i64,
                                        ctypes.c_int, ctypes.c_int, ctypes.c_int]  # fmt: skip


def _sgemm(library: ctypes.CDLL, type_id: int, w: ctypes.Array, a: ctypes.Array, m: int, n: int, k: int,
           threads: int, activation_type: int = GGML_TYPE_Q8_0) -> bytes:  # fmt: skip
    """llamafile_sgemm of m weight rows by n activation columns (k blocks each), as ggml's threads
    call it (each computes its share; this class of kernels has no barrier, so one after another)."""
    out = (ctypes.c_float * (m * n))()
    for ith in range(threads):
        params = ComputeParams(ith, threads, 0, None, None, False)
        if not library.llamafile_sgemm(ctypes.byref(params), m, n, k, w, k, a, k, out, m, type_id,
                                       activation_type, 0):  # fmt: skip
            pytest.skip(f"this build's llamafile_sgemm does not take type {type_id} (no patch 0004)")
    return bytes(out)


@pytest.mark.parametrize("type_id", [GGML_TYPE_Q8_0, GGML_TYPE_Q5_0, GGML_TYPE_Q4_0, GGML_TYPE_IQ4_NL])
def test_few_column_matmul_is_bit_identical_to_the_tiles(type_id: int) -> None:
    """Patch 0004: a matmul of 2-12 activation columns (a decode step of several streams, a
    speculative verification) goes through the weights one row at a time; every output must equal,
    bit for bit, what stock's tiles give it, which they still do at 16 columns. Odd row counts,
    several threads, and a matrix large enough for the 2-column row pass (an output layer)."""
    import numpy as np

    library = ctypes.CDLL(str(lib_dir() / "libggml-cpu.so"))
    if not hasattr(library, "llamafile_sgemm") or not _has_avx2():
        pytest.skip("no llamafile sgemm in this build")
    _declare_sgemm(library)
    rng = np.random.default_rng(type_id)
    for m, width in ((37, 64), (64, 576), (13_200, 640)):
        k = width // 32
        weights = (rng.standard_normal((m, width)) * rng.uniform(0.01, 3, (m, 1))).astype(np.float32)
        w = _quantize(weights.ravel().tolist(), type_id, m, width)
        acts = (rng.standard_normal((16, width)) * rng.uniform(0.1, 10, (16, 1))).astype(np.float32)
        a = _quantize(acts.ravel().tolist(), GGML_TYPE_Q8_0, 16, width, activations=True)
        tiles = _sgemm(library, type_id, w, a, m, 16, k, 1)
        for n in (2, 3, 5, 8, 9, 12) if m < 10_000 else (2, 8):
            for threads in (1, 3):
                got = _sgemm(library, type_id, w, a, m, n, k, threads)
                assert got == tiles[: 4 * m * n], (type_id, m, n, threads)


def test_few_column_q4_1_matmul_is_bit_identical_to_ggml_dots() -> None:
    """Patch 0004, Q4_1 (the bundled model's format): 3-12 activation columns through the row pass
    give, bit for bit, ggml's own dot product of each (row, column), on 1 and 3 threads; ggml's
    paired kernel (patch 0001) equals those dots too, so decode gives the same logits either way."""
    library = ctypes.CDLL(str(lib_dir() / "libggml-cpu.so"))
    traits = cpu_type_traits(GGML_TYPE_Q4_1)
    if not hasattr(library, "llamafile_sgemm") or traits is None or not _has_avx2():
        pytest.skip("no llamafile sgemm in this build")
    _declare_sgemm(library)
    rng = random.Random(41)
    for m, width in ((37, 64), (24, 576)):
        k = width // 32
        w = _quantize([rng.gauss(rng.uniform(-1, 1), rng.uniform(0.01, 3)) for _ in range(m * width)],
                      GGML_TYPE_Q4_1, m, width)  # fmt: skip
        a = _quantize(
            [rng.gauss(0, rng.uniform(0.1, 10)) for _ in range(12 * width)], GGML_TYPE_Q8_1, 12, width
        )
        w_row, a_row = len(w) // m, len(a) // 12
        dots = []
        for col in range(12):
            for row in range(m):
                out = ctypes.c_float()
                traits.vec_dot(width, ctypes.byref(out), 0, ctypes.addressof(w) + row * w_row, 0,
                               ctypes.addressof(a) + col * a_row, 0, 1)  # fmt: skip
                dots.append(out.value)
        expected = struct.pack(f"{len(dots)}f", *dots)
        for n in (3, 5, 8, 9, 12):  # 2 columns stay on ggml's paired kernel
            for threads in (1, 3):
                got = _sgemm(library, GGML_TYPE_Q4_1, w, a, m, n, k, threads, GGML_TYPE_Q8_1)
                assert got == expected[: 4 * m * n], (m, n, threads)
