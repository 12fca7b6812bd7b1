"""Every knowledge-base lookup takes a KbScope: a base outside it is indistinguishable from a missing one,
by identifier and by display name alike, and only KbScope.everything() sees every base."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import pytest

from bendi.access.scope import KbScope
from bendi.core.errors import NotFoundError
from bendi.knowledge.ingest import ingest_paths
from bendi.knowledge.library import KnowledgeBase, KnowledgeBases

EVERYTHING = KbScope.everything()
HIDDEN = "保密 采掘计划"
RULES = "# 通风规定\n\n第一条 矿井必须采用机械通风。\n\n第二条 主要通风机必须安装在地面。\n"


@pytest.fixture()
def bases(knowledge: KnowledgeBases, tmp_path: Path) -> tuple[KnowledgeBase, KnowledgeBase]:
    """An open base and a hidden one with a Chinese display name, each with one small document."""
    doc = tmp_path / "通风规定.md"
    doc.write_text(RULES, encoding="utf-8")
    open_kb, hidden_kb = knowledge.create("open"), knowledge.create(HIDDEN)
    for kb in (open_kb, hidden_kb):
        assert [o.status for o in ingest_paths(kb, [doc])] == ["indexed"]
    return open_kb, hidden_kb


def _not_found(action: Callable[..., object], *args: object) -> NotFoundError:
    with pytest.raises(NotFoundError) as caught:
        action(*args)
    return caught.value


def test_a_base_outside_the_scope_reads_exactly_like_a_missing_one(
    knowledge: KnowledgeBases, bases: tuple[KnowledgeBase, KnowledgeBase]
) -> None:
    open_kb, hidden = bases
    scope = KbScope.only([open_kb.name])

    def search(ref: str, scope: KbScope) -> object:
        return knowledge.get(ref, scope).search("通风", top_k=1)

    refused = {
        ref: [_not_found(action, ref, scope) for action in (knowledge.get, search, knowledge.delete)]
        for ref in (hidden.name, HIDDEN)
    }
    assert knowledge.names(EVERYTHING) == sorted([open_kb.name, hidden.name])  # delete did nothing
    assert knowledge.get(open_kb.name, scope).search("通风", top_k=1).hits

    knowledge.delete(hidden.name, EVERYTHING)
    for ref, errors in refused.items():
        missing = _not_found(knowledge.get, ref, EVERYTHING)
        for error in errors:
            assert (type(error), error.message, error.http_status, error.code) == (
                type(missing), missing.message, missing.http_status, missing.code,
            )  # fmt: skip


def test_list_and_names_leave_out_what_the_scope_does_not_allow(
    knowledge: KnowledgeBases, bases: tuple[KnowledgeBase, KnowledgeBase]
) -> None:
    open_kb, hidden = bases
    scope = KbScope.only([open_kb.name, "no-such-base"])
    assert knowledge.names(scope) == [open_kb.name]
    assert [i.name for i in knowledge.list(scope)] == [open_kb.name]
    assert knowledge.names(KbScope.only([])) == [] and knowledge.list(KbScope.only([])) == []


def test_a_display_name_cannot_get_round_the_scope(
    knowledge: KnowledgeBases, bases: tuple[KnowledgeBase, KnowledgeBase]
) -> None:
    open_kb, hidden = bases
    # The scope holds identifiers: naming the display name in it grants nothing, and looking the
    # base up by its display name is checked against its identifier.
    for scope in (KbScope.only([open_kb.name]), KbScope.only([HIDDEN])):
        for ref in (HIDDEN, f"  {HIDDEN} ", hidden.name):
            _not_found(knowledge.get, ref, scope)
    granted = KbScope.only([hidden.name])
    assert knowledge.get(HIDDEN, granted) is knowledge.get(hidden.name, granted) is hidden
    _not_found(knowledge.get, "open", granted)


def test_everything_sees_every_base(
    knowledge: KnowledgeBases, bases: tuple[KnowledgeBase, KnowledgeBase]
) -> None:
    open_kb, hidden = bases
    assert knowledge.names(EVERYTHING) == sorted([open_kb.name, hidden.name])
    assert {i.display_name for i in knowledge.list(EVERYTHING)} == {"open", HIDDEN}
    assert knowledge.get(HIDDEN, EVERYTHING) is hidden


def test_the_scope_is_a_required_argument() -> None:
    for method in ("get", "list", "names", "delete"):
        parameter = inspect.signature(getattr(KnowledgeBases, method)).parameters["scope"]
        assert parameter.default is inspect.Parameter.empty, method
    assert "scope" not in inspect.signature(KnowledgeBases.create).parameters
