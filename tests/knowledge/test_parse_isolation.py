"""Checklist R18: every document is parsed in a worker process. A parser that hangs, spins, crashes
or exhausts memory fails that document alone, with its reason, within the limit + 5 s; the bomb
corpus (hostile PDFs, DOCX, XLSX) fails or is read safely; nothing of /etc/passwd is stored; the
worker has no network, a private temp dir and none of the server's secrets; scans are still OCR'd."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_files import MUST_FAIL, PASSWD_MARKERS, build_corpus, grid_pdf, plain_docx
from scans import ScanStyle, regulation_paragraphs, render_pages, save_tiff

from bendi.core.errors import DocumentError, ParseFailedError
from bendi.knowledge.ingest import ingest_paths
from bendi.knowledge.library import KnowledgeBases
from bendi.knowledge.ocr_pool import OcrReader
from bendi.knowledge.parse_worker import ParsePool
from bendi.knowledge.parse_worker_protocol import Limits

TIMEOUT_S = 4.0
SLACK_S = 5.0  # the checklist's "within limit + 5 s"
MEMORY_MB = 1536
GOOD = "第一条 入井人员必须随身携带自救器和标识卡。\n"


@pytest.fixture()
def hostile_pool() -> Iterator[ParsePool]:
    pool = ParsePool(2, Limits(memory_mb=MEMORY_MB, timeout_s=TIMEOUT_S, recycle_after=50),
                     parser="hostile_parsers:parse")  # fmt: skip
    yield pool
    pool.close()


@pytest.fixture()
def product_pool() -> Iterator[ParsePool]:
    pool = ParsePool(2, Limits(memory_mb=MEMORY_MB, timeout_s=TIMEOUT_S, recycle_after=50))
    yield pool
    pool.close()


def _good(folder: Path) -> Path:
    path = folder / "good.txt"
    path.write_text(GOOD, encoding="utf-8")
    return path


def _stored_text(kb_dir: Path) -> str:
    with sqlite3.connect(kb_dir / "index.sqlite3") as db:
        chunks = " ".join(row[0] for row in db.execute("SELECT text FROM chunks"))
        errors = " ".join(row[0] or "" for row in db.execute("SELECT error FROM documents"))
    return chunks + errors


@pytest.mark.parametrize(
    ("suffix", "reasons"),
    [
        (".hang.txt", {"timeout"}),
        (".spin.txt", {"cpu_limit", "timeout"}),  # whichever clock runs out first on a loaded machine
        (".segfault.txt", {"crashed"}),
        (".exit.txt", {"crashed"}),
        (".hog.txt", {"memory_limit"}),
    ],
)
def test_a_misbehaving_parser_fails_its_document_only(
    hostile_pool: ParsePool, tmp_path: Path, suffix: str, reasons: set[str]
) -> None:
    good = _good(tmp_path)
    assert "自救器" in hostile_pool.parse(good).blocks[0].text  # a worker is up (start-up is not timed)
    bad = tmp_path / f"evil{suffix}"
    bad.write_text("x", encoding="utf-8")
    started = time.monotonic()
    with pytest.raises(ParseFailedError) as failed:
        hostile_pool.parse(bad)
    assert time.monotonic() - started < TIMEOUT_S + SLACK_S
    assert failed.value.reason in reasons, failed.value.message
    assert (
        failed.value.message.startswith("evil") and failed.value.reason.split("_")[0] in failed.value.message
    )
    # The pool replaced the dead worker: the next document parses.
    assert "自救器" in hostile_pool.parse(good).blocks[0].text


def test_ingestion_marks_each_bad_file_failed_and_indexes_the_rest(
    knowledge: KnowledgeBases, hostile_pool: ParsePool, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    _good(folder)
    for kind in ("hang", "segfault", "hog"):
        (folder / f"{kind}.{kind}.txt").write_text("x", encoding="utf-8")
    kb = knowledge.create("isolation")
    outcomes = {o.file.split("/")[-1]: o for o in ingest_paths(kb, [folder], parsers=hostile_pool)}
    assert outcomes["good.txt"].status == "indexed"
    for name, reason in (("hang.hang.txt", "timeout"), ("segfault.segfault.txt", "crashed"),
                         ("hog.hog.txt", "memory")):  # fmt: skip
        assert outcomes[name].status == "failed" and reason in (outcomes[name].error or ""), outcomes[name]
        row = kb.index.document(outcomes[name].doc_id or 0)
        assert row.status == "failed" and row.error == outcomes[name].error
    assert kb.search("自救器", top_k=1).hits[0].file.endswith("good.txt")


def test_bomb_corpus_fails_or_is_read_safely(knowledge: KnowledgeBases, product_pool: ParsePool,
                                             tmp_path: Path) -> None:  # fmt: skip
    corpus = build_corpus(tmp_path / "bombs")
    kb = knowledge.create("bombs")
    for name, path in corpus.items():
        started = time.monotonic()
        outcome = ingest_paths(kb, [path], parsers=product_pool)[0]
        took = time.monotonic() - started
        assert took < TIMEOUT_S + SLACK_S + 20, (name, took)  # + embedding, for the readable ones
        if name in MUST_FAIL:
            assert outcome.status == "failed" and outcome.error, (name, outcome)
        else:
            assert outcome.status in ("failed", "indexed"), (name, outcome)
    stored = _stored_text(kb.directory)
    assert not any(marker in stored for marker in PASSWD_MARKERS)
    errors = {d.file.split("/")[-1]: d.error or "" for d in kb.index.documents()}
    for name in ("xxe.docx", "billion-laughs.docx", "xxe.xlsx", "billion-laughs.xlsx"):
        assert "DTD" in errors[name], errors[name]  # refused by name before any XML parser runs
    assert "ZIP bomb" in errors["zip-bomb.docx"], errors["zip-bomb.docx"]


def test_a_real_file_that_hangs_table_detection_is_stopped(product_pool: ParsePool, tmp_path: Path) -> None:
    grid = grid_pdf(tmp_path / "grid.pdf")
    started = time.monotonic()
    with pytest.raises(ParseFailedError) as failed:
        product_pool.parse(grid)
    assert time.monotonic() - started < TIMEOUT_S + SLACK_S + 10  # + the worker's start
    assert failed.value.reason in ("timeout", "cpu_limit")
    assert product_pool.parse(_good(tmp_path)).blocks  # and the pool goes on


def test_the_worker_has_no_network_no_secrets_and_a_private_temp_dir(
    hostile_pool: ParsePool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENDI_LDAP_BIND_PASSWORD", "canary-8812")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        probe = tmp_path / "env.probe.txt"
        probe.write_text(str(listener.getsockname()[1]))
        seen = json.loads(hostile_pool.parse(probe).blocks[0].text)
    if hostile_pool.network == "isolated":
        assert seen["network"].startswith("refused"), seen["network"]
    else:  # say so: this OS or container does not allow a network namespace
        pytest.xfail(f"network not isolated here: {hostile_pool.network}")
    assert "BENDI_LDAP_BIND_PASSWORD" not in seen["env"] and not any(
        k.startswith("BENDI_") for k in seen["env"]
    )
    assert seen["tmpdir"] == seen["cwd"] and Path(seen["tmpdir"]).name.startswith("worker-")
    assert seen["rlimit_as"] == MEMORY_MB * 1024 * 1024 and seen["rlimit_core"] == 0
    hostile_pool.close()
    assert not Path(seen["tmpdir"]).exists()  # removed with its worker


def test_documents_and_scans_still_parse_in_workers(product_pool: ParsePool, tmp_path: Path,
                                                    mining_dir: Path) -> None:  # fmt: skip
    docx = plain_docx(tmp_path / "plain.docx")
    assert "独立通风系统" in " ".join(b.text for b in product_pool.parse(docx).blocks)
    with pytest.raises(DocumentError, match="damaged"):
        broken = tmp_path / "broken.pdf"
        broken.write_bytes(b"%PDF-1.4\n" + b"\x00\xff" * 64)
        product_pool.parse(broken)
    regulation = mining_dir / "lawrefbook/行政法规/安全生产许可证条例(2014-07-29).md"
    pages = render_pages(regulation_paragraphs(regulation), ScanStyle(dpi=150), max_pages=1)
    scan = save_tiff(pages, tmp_path / "scan.tiff", dpi=150)
    assert product_pool.looks_scanned(scan) and not product_pool.looks_scanned(docx)
    progress: list[tuple[int, int]] = []
    slow = ParsePool(1, Limits(memory_mb=2048, timeout_s=120))  # OCR of a page takes ~10 CPU s
    try:
        doc = slow.parse(scan, OcrReader(threads=2, on_page=lambda d, t: progress.append((d, t))))
    finally:
        slow.close()
    assert doc.pages == 1 and "安全生产许可证" in "".join(b.text for b in doc.blocks)
    assert progress[0] == (0, 1) and progress[-1] == (1, 1)  # OCR progress crosses the process boundary
