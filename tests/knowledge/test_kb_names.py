"""Names in any script: display names are normalized and look-alikes refused, every knowledge base keeps
a safe ASCII identifier, and a Chinese-named base works end to end by either name (library and CLI)."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kb_testing import MINING_SUBSET

from bendi.access.scope import KbScope
from bendi.core.errors import AlreadyExistsError, InvalidNameError, NotFoundError
from bendi.core.names import ascii_identifier, display_name, name_key
from bendi.core.paths import safe_component
from bendi.knowledge.ingest import ingest_paths
from bendi.knowledge.library import INDEX_FILE, KnowledgeBases

EVERYTHING = KbScope.everything()
MINING_CN = "煤矿安全法规"
LICENCE_LAW = MINING_SUBSET[1]  # 安全生产许可证条例, the smallest of the three
LICENCE_QUESTION = "企业取得安全生产许可证应当具备哪些安全生产条件？"
HASH_ID = re.compile(r"kb-[0-9a-f]{6}")


# --- bendi.core.names ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  煤矿安全法规 ", "煤矿安全法规"),
        ("通风科\t\n 二队", "通风科 二队"),  # inner whitespace runs become one space
        ("ＤｅｅｐＳｅｅｋ助手", "DeepSeek助手"),  # NFKC: full-width letters are ASCII
        ("2025年通风科", "2025年通风科"),  # CJK beside digits and Latin is fine
        ("DeepSeek助手", "DeepSeek助手"),
        ("粉尘 5µm", "粉尘 5μm"),  # a unit beside Latin letters is no look-alike
        ("Ελληνικά", "Ελληνικά"),
        ("Охрана труда", "Охрана труда"),
        ("Mining safety (EN)", "Mining safety (EN)"),
    ],
)
def test_display_names_are_normalized_and_kept_as_given(raw: str, expected: str) -> None:
    assert display_name(raw, what="department name") == expected


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("pаypal", "mixes Cyrillic and Latin"),  # а is CYRILLIC SMALL LETTER A
        ("Αpple 手册", "mixes Greek and Latin"),  # Α is GREEK CAPITAL LETTER ALPHA
        ("煤矿\u202e规法", "U+202E"),  # RIGHT-TO-LEFT OVERRIDE
        ("煤矿\u2066法规\u2069", "U+2066"),  # LEFT-TO-RIGHT ISOLATE
        ("煤矿\u200b法规", "U+200B"),  # ZERO WIDTH SPACE
        ("a\u200db", "U+200D"),  # ZERO WIDTH JOINER
        ("\ufeffname", "U+FEFF"),
        ("ab\x07", "U+0007"),
        ("name\ufe0f", "U+FE0F"),  # a variation selector is invisible too
        ("\u3164", "U+1160"),  # the Hangul filler looks like nothing (NFKC makes it U+1160)
        ("", "empty"),
        (" \t ", "empty"),
        ("名" * 101, "101 characters"),
    ],
)
def test_bad_display_names_are_refused_with_a_sentence(raw: str, says: str) -> None:
    with pytest.raises(InvalidNameError) as caught:
        display_name(raw, what="department name")
    assert says in caught.value.message and "department name" in caught.value.message
    assert caught.value.message.endswith(".")


@given(st.text(max_size=120))
def test_display_name_is_refused_or_nfkc_stable(raw: str) -> None:
    try:
        name = display_name(raw, what="name")
    except InvalidNameError:
        return
    assert unicodedata.normalize("NFKC", name) == name
    assert name == name.strip() and "  " not in name and 0 < len(name) <= 100
    assert display_name(name, what="name") == name  # a display name is its own normal form


@pytest.mark.parametrize(
    ("display", "pattern"),
    [
        ("mining", "mining"),  # an ASCII name that is already safe is its own identifier
        ("Mining_2025.v1", "Mining_2025.v1"),
        (MINING_CN, r"kb-[0-9a-f]{6}"),
        ("2025年通风科", r"2025-kb-[0-9a-f]{6}"),
        ("DeepSeek助手", r"deepseek-kb-[0-9a-f]{6}"),
        ("Mining Safety", r"mining-safety-kb-[0-9a-f]{6}"),
        ("../etc", r"etc-kb-[0-9a-f]{6}"),
    ],
)
def test_ascii_identifiers_are_readable_and_stable(display: str, pattern: str) -> None:
    made = ascii_identifier(display, taken=(), prefix="kb")
    assert re.fullmatch(pattern, made), made
    assert ascii_identifier(display, taken=["other"], prefix="kb") == made  # same name, same identifier


def test_ascii_identifiers_avoid_taken_ones_case_insensitively() -> None:
    assert ascii_identifier("mining", taken={"MINING"}, prefix="kb") == "mining-2"
    first = ascii_identifier(MINING_CN, taken=(), prefix="kb")
    assert ascii_identifier(MINING_CN, taken={first, first + "-2"}, prefix="kb") == first + "-3"
    assert len(ascii_identifier("a" * 200, taken={"a" * 200}, prefix="kb")) == 200


@given(st.text(max_size=300), st.sets(st.text(max_size=12), max_size=5))
def test_ascii_identifier_is_always_a_safe_component(display: str, taken: set[str]) -> None:
    made = ascii_identifier(display, taken=taken, prefix="kb")
    assert safe_component(made) == made
    assert made.casefold() not in {t.casefold() for t in taken}


def test_ascii_identifier_of_a_lone_surrogate() -> None:
    assert HASH_ID.fullmatch(ascii_identifier("\ud800", taken=(), prefix="kb"))


def test_name_key_ignores_case_width_and_spacing() -> None:
    assert name_key(" Mining  Safety ") == name_key("ＭＩＮＩＮＧ safety")


# --- knowledge bases with Chinese names ---------------------------------------------------------
def test_chinese_knowledge_base_end_to_end(knowledge: KnowledgeBases, mining_dir: Path) -> None:
    kb = knowledge.create(MINING_CN, "国家矿山安全法规")
    assert HASH_ID.fullmatch(kb.name) and kb.display_name == MINING_CN
    assert kb.directory.name == kb.name  # the path only ever uses the ASCII identifier
    assert knowledge.names(EVERYTHING) == [kb.name]

    by_display = knowledge.get(MINING_CN, EVERYTHING)
    assert by_display is knowledge.get(kb.name, EVERYTHING)
    outcomes = ingest_paths(by_display, [mining_dir / LICENCE_LAW])
    assert [o.status for o in outcomes] == ["indexed"]

    hits = {ref: knowledge.get(ref, EVERYTHING).search(LICENCE_QUESTION, top_k=3).hits
            for ref in (MINING_CN, kb.name, f" {MINING_CN}  ")}  # fmt: skip
    assert len({tuple(h.chunk_id for h in found) for found in hits.values()}) == 1
    assert "安全生产许可证条例" in hits[MINING_CN][0].file and hits[MINING_CN][0].article == "第六条"

    [info] = knowledge.list(EVERYTHING)
    assert (info.name, info.display_name, info.documents) == (kb.name, MINING_CN, 1)
    assert info.to_json()["display_name"] == MINING_CN and info.to_json()["name"] == kb.name

    knowledge.delete(MINING_CN, EVERYTHING)
    assert knowledge.names(EVERYTHING) == [] and not kb.directory.exists()


def test_duplicate_display_names_are_refused(knowledge: KnowledgeBases) -> None:
    first = knowledge.create(MINING_CN)
    knowledge.create("Mining")
    for again in (MINING_CN, f"  {MINING_CN} ", "mining", "ＭＩＮＩＮＧ", first.name, first.name.upper()):
        with pytest.raises(AlreadyExistsError, match="exists already"):
            knowledge.create(again)
    assert knowledge.names(EVERYTHING) == sorted(["Mining", first.name])


def test_lookalike_and_bidi_names_are_refused_and_nothing_is_created(knowledge: KnowledgeBases) -> None:
    for bad in ("pаypal", "煤矿\u202e规法", "煤矿\u2067安全", "煤\u200b矿", "法规/2025", "法规\\2025"):
        with pytest.raises(InvalidNameError):
            knowledge.create(bad)
    assert knowledge.names(EVERYTHING) == []
    assert list(knowledge._paths.knowledge.iterdir()) == []


def test_a_base_made_before_display_names_shows_its_identifier(knowledge: KnowledgeBases) -> None:
    kb = knowledge.create("legacy")
    with sqlite3.connect(kb.directory / INDEX_FILE) as db:
        db.execute("DELETE FROM meta WHERE key = 'display_name'")
    [info] = knowledge.list(EVERYTHING)
    assert info.display_name == "legacy" and info.to_json()["display_name"] == "legacy"


def test_lookups_that_name_nothing_are_not_found(knowledge: KnowledgeBases) -> None:
    knowledge.create(MINING_CN)
    for ref in ("煤矿", "../etc", "", MINING_CN + "x"):
        with pytest.raises(NotFoundError):
            knowledge.get(ref, EVERYTHING)


# --- the CLI -------------------------------------------------------------------------------------
def _bendi(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "bendi"), *args], capture_output=True, text=True, timeout=300,
        env={"BENDI_HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )  # fmt: skip


def test_cli_takes_the_display_name_or_the_identifier(kb_home: Path, mining_dir: Path) -> None:
    created = _bendi(kb_home, "kb", "create", MINING_CN)
    assert created.returncode == 0, created.stderr
    assert MINING_CN in created.stdout and f"bendi kb add {MINING_CN} PATH" in created.stdout
    [ident] = HASH_ID.findall(created.stdout)

    added = _bendi(kb_home, "kb", "add", MINING_CN, str(mining_dir / LICENCE_LAW))
    assert added.returncode == 0, added.stderr
    assert "1 indexed" in added.stdout

    for ref in (MINING_CN, ident):
        found = _bendi(kb_home, "kb", "search", ref, LICENCE_QUESTION, "--top-k", "2", "--json")
        assert found.returncode == 0, found.stderr
        assert json.loads(found.stdout)[0]["article"] == "第六条"

    listed = _bendi(kb_home, "kb", "list", "--json")
    assert [(b["name"], b["display_name"]) for b in json.loads(listed.stdout)] == [(ident, MINING_CN)]
    table = _bendi(kb_home, "kb", "list").stdout
    assert MINING_CN in table and f"({ident})" in table

    missing = _bendi(kb_home, "kb", "docs", "没有这个库")
    assert missing.returncode != 0 and "There is no knowledge base named 没有这个库" in missing.stderr

    removed = _bendi(kb_home, "kb", "rm", MINING_CN)
    assert removed.returncode == 0 and f"Deleted knowledge base {MINING_CN}." in removed.stdout
    assert json.loads(_bendi(kb_home, "kb", "list", "--json").stdout) == []
