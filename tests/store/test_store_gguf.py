"""The GGUF header reader on the real SmolLM2 file, on mutated and truncated copies, and on hand-made corruptions."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from ggufmaker import gguf_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bendi.core.errors import InvalidModelFileError
from bendi.store.formats import check_model_file, check_safetensors
from bendi.store.gguf import GgufInfo, read_gguf


@pytest.fixture(scope="module")
def header(smollm2_path: Path) -> bytes:
    """The real file's header and tensor table plus a little data (mutations target these bytes)."""
    with open(smollm2_path, "rb") as handle:
        return handle.read(2_400_000)


def test_reads_the_real_smollm2_header(smollm2_path):
    info = read_gguf(smollm2_path)
    assert info.architecture == "llama" and info.quantization == "Q4_1"
    assert info.context_length == 8192 and info.layer_count == 30
    assert info.head_count == 9 and info.head_count_kv == 3
    assert 134_000_000 < info.parameter_count < 135_000_000
    assert info.license == "apache-2.0" and "<|im_start|>" in (info.chat_template or "")
    assert info.data_bytes <= smollm2_path.stat().st_size


def _parse_or_reject(path: Path) -> None:
    try:
        result = read_gguf(path)
    except InvalidModelFileError as exc:
        assert "GGUF" in exc.message or "bytes" in exc.message
    else:
        assert isinstance(result, GgufInfo)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_real_headers_are_read_or_rejected_never_crash(tmp_path, header, smollm2_path, data):
    # The real file is ~98 MB; mutate a copy of its first part and pad it back to full size, so
    # tensors remain in range unless the mutation moved them.
    full_size = smollm2_path.stat().st_size
    buf = bytearray(header)
    # the first ~1.9 MB is metadata (token lists) and the tensor table: bias mutations into it
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        kind = data.draw(st.sampled_from(["byte", "u64", "u32"]))
        if kind == "byte":
            buf[pos] = data.draw(st.integers(0, 255))
        else:
            width = 8 if kind == "u64" else 4
            value = data.draw(st.sampled_from([0, 1, 2**31, 2**32 - 1, 2**63, 2**64 - 1, 0xDEADBEEF]))
            buf[pos : pos + width] = value.to_bytes(8, "little")[:width]
    path = tmp_path / "mutated.gguf"
    with open(path, "wb") as handle:
        handle.write(buf[: len(header)])
        handle.truncate(full_size)
    _parse_or_reject(path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 2_400_000))
def test_truncated_real_files_are_rejected(tmp_path, header, cut):
    path = tmp_path / "truncated.gguf"
    path.write_bytes(header[:cut])
    with pytest.raises(InvalidModelFileError):
        read_gguf(path)  # every tensor of the real model ends past 2.4 MB, so any cut is detected


def _file(tmp_path: Path, raw: bytes) -> Path:
    path = tmp_path / "x.gguf"
    path.write_bytes(raw)
    return path


def _corrupt(raw: bytes, offset: int, value: bytes) -> bytes:
    return raw[:offset] + value + raw[offset + len(value) :]


GOOD = gguf_bytes(4096)
FIRST_KEY = 24  # magic 4 + version 4 + tensor count 8 + kv count 8


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "only 0 bytes"),
        (_corrupt(GOOD, 0, b"GGML"), "magic"),
        (_corrupt(GOOD, 4, struct.pack("<I", 1)), "version 1"),
        (_corrupt(GOOD, 4, struct.pack("<I", 99)), "version 99"),
        (_corrupt(GOOD, 8, struct.pack("<Q", 2**40)), "tensors"),
        (_corrupt(GOOD, 16, struct.pack("<Q", 2**60)), "metadata entries"),
        (_corrupt(GOOD, FIRST_KEY, struct.pack("<Q", 2**62)), "limit"),
        (_corrupt(GOOD, FIRST_KEY, struct.pack("<Q", 60_000)), "past the end"),
        (
            _corrupt(GOOD, FIRST_KEY + 8 + len("general.architecture"), struct.pack("<I", 77)),
            "unknown value type",
        ),
        (GOOD[: len(GOOD) - 100], "truncated"),
    ],
    ids=[
        "empty",
        "magic",
        "v1",
        "v99",
        "tensor-count",
        "kv-count",
        "huge-key",
        "key-past-eof",
        "value-type",
        "cut",
    ],
)
def test_hand_made_corruptions_are_rejected_with_a_reason(tmp_path, raw, reason):
    with pytest.raises(InvalidModelFileError, match=reason):
        read_gguf(_file(tmp_path, raw))


def _tensor_field(raw: bytes, relative: int) -> int:
    """Offset of a field of the single tensor entry (name 'blk.0.weight'), relative to its n_dims."""
    return raw.index(b"blk.0.weight") + len(b"blk.0.weight") + relative


@pytest.mark.parametrize(
    ("relative", "value", "reason"),
    [
        (0, struct.pack("<I", 5), "dimensions"),
        (4, struct.pack("<Q", 0), "dimension 0"),
        (12, struct.pack("<I", 3), "not a multiple"),  # Q4_1 packs 32 elements per block; 1025 do not fit
        (12, struct.pack("<I", 31), "unknown ggml type"),
        (16, struct.pack("<Q", 7), "not aligned"),
        (16, struct.pack("<Q", 2**20), "past the end"),
    ],
    ids=["dims", "zero-dim", "block", "type", "align", "offset"],
)
def test_bad_tensor_entries_are_rejected(tmp_path, relative, value, reason):
    raw = gguf_bytes(4100)  # 1025 F32 elements: not a multiple of a 32-element block
    raw = _corrupt(raw, _tensor_field(raw, relative), value)
    with pytest.raises(InvalidModelFileError, match=reason):
        read_gguf(_file(tmp_path, raw))


def test_pickles_and_unknown_formats_are_refused(tmp_path):
    for suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl"):
        path = tmp_path / f"model{suffix}"
        path.write_bytes(b"\x80\x04K\x01.")
        with pytest.raises(InvalidModelFileError, match="pickle"):
            check_model_file(path)
    other = tmp_path / "model.onnx"
    other.write_bytes(b"x")
    with pytest.raises(InvalidModelFileError, match="not a model format"):
        check_model_file(other)


def _safetensors(tmp_path: Path, header: dict[str, object], data: bytes) -> Path:
    raw = json.dumps(header).encode()
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def test_safetensors_headers_are_validated(tmp_path):
    good = {"a": {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 8]}, "__metadata__": {"format": "pt"}}
    assert "a" in check_safetensors(_safetensors(tmp_path, good, b"\x00" * 8))
    assert check_model_file(_safetensors(tmp_path, good, b"\x00" * 8)) is None
    bad_cases = [
        ({"a": {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 8]}}, b"\x00" * 4, "do not match"),
        ({"a": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 1]}}, b"\x00", "unknown dtype"),
        ({"a": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]}}, b"\x00" * 3, "gaps"),
        ({"__metadata__": {"k": 1}}, b"", "strings"),
    ]
    for header, data, reason in bad_cases:
        with pytest.raises(InvalidModelFileError, match=reason):
            check_safetensors(_safetensors(tmp_path, header, data))
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    with pytest.raises(InvalidModelFileError, match="header claims"):
        check_safetensors(huge)
