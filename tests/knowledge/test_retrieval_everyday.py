"""Everyday-language retrieval: formal terms for everyday words, clause lists, the Reranker seam and
model query rewriting (off by default, only for capable models), through the real index and embedder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from bendi.core.errors import UserInputError
from bendi.core.paths import DataPaths
from bendi.core.settings import load_settings
from bendi.engines.messages import (
    ChatMessage,
    Finished,
    GenerationEvent,
    GenerationRequest,
    RenderedPrompt,
    TextDelta,
    Usage,
)
from bendi.engines.protocol import EngineInfo
from bendi.knowledge.answer import ground
from bendi.knowledge.embedding import make_embedder
from bendi.knowledge.index import ScoredChunk
from bendi.knowledge.ingest import ingest_paths
from bendi.knowledge.library import KnowledgeBase, KnowledgeBases
from bendi.knowledge.rerank import load_reranker
from bendi.knowledge.rewrite import can_rewrite, parse_rewrites, rewrite_query
from bendi.knowledge.rewrite_rules import clauses, expansion_terms
from bendi.knowledge.search import plan_query, search

RULES = (
    "# 煤矿入井管理规定\n\n"
    "第一条 饮酒后严禁入井，入井前由班组长检查。\n\n"
    "第二条 入井人员必须随身携带自救器和矿灯。\n\n"
    "第三条 井下作业人员每班工作时间不得超过八小时。\n"
)
WAGES = (
    "# 劳动报酬规定\n\n"
    "第一条 用人单位应当按时足额支付劳动报酬。\n\n"
    "第二条 用人单位解除劳动合同的，应当向劳动者支付经济补偿。\n"
)


@pytest.fixture()
def rules_kb(knowledge: KnowledgeBases, tmp_path: Path) -> KnowledgeBase:
    kb = knowledge.create("rules")
    for name, text in (("入井.md", RULES), ("报酬.md", WAGES)):
        (tmp_path / name).write_text(text, encoding="utf-8")
        ingest_paths(kb, [tmp_path / name])
    return kb


def test_everyday_words_get_the_documents_terms() -> None:
    assert set(expansion_terms("喝了点酒还能下井吗？").split()) == {"饮酒", "酒后", "入井", "井下"}
    assert "解除劳动合同" in expansion_terms("老板把我开除了")
    assert expansion_terms("矿井必须采用机械通风") == ""  # already formal: nothing added
    # a formal term the question already has is not repeated
    assert "劳动报酬" not in expansion_terms("工资就是劳动报酬吗")


def test_colloquial_question_finds_the_article_only_through_the_formal_terms(rules_kb: KnowledgeBase) -> None:
    question = "喝了点酒还能下井吗？"
    plain = search(
        rules_kb.index, rules_kb.embedder, question, mode="bm25", plan=plan_query(question, expand=False)
    )
    assert not any(h.article == "第一条" and "入井" in h.file for h in plain.hits)  # no shared word
    hits = rules_kb.search(question, top_k=3, mode="bm25").hits
    assert hits and hits[0].article == "第一条" and Path(hits[0].file).name == "入井.md"


def test_multi_clause_question_searches_each_clause(rules_kb: KnowledgeBase) -> None:
    question = "老板一直拖欠我的工资，后来还把我开除了，能要补偿吗？"
    assert len(clauses(question)) == 3 and clauses("什么是行政处罚？") == []
    assert plan_query(question).dense == (question,)  # off by default: it doubles the embedding time
    plan = plan_query(question, split=True)
    hits = search(rules_kb.index, rules_kb.embedder, question, top_k=3, plan=plan).hits
    assert Path(hits[0].file).name == "报酬.md"
    assert any(name.startswith("dense:") for h in hits for name in h.ranks)  # a clause list voted


class MarkerReranker:
    """A real (lexical) reranker: scores a passage by whether it holds a marker string."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.calls: list[tuple[str, int]] = []

    @property
    def name(self) -> str:
        return "marker"

    def scores(self, query: str, passages: Sequence[str]) -> list[float]:
        self.calls.append((query, len(passages)))
        return [1.0 if self.marker in p else 0.0 for p in passages]


def test_reranker_seam_reorders_the_fused_candidates(kb_home: Path, tmp_path: Path) -> None:
    reranker = MarkerReranker("自救器")
    knowledge = KnowledgeBases(DataPaths(kb_home).ensure(), "multilingual-e5-small",
                               lambda name: make_embedder(name, threads=2), reranker=lambda: reranker)  # fmt: skip
    kb = knowledge.create("reranked")
    (tmp_path / "入井.md").write_text(RULES, encoding="utf-8")
    ingest_paths(kb, [tmp_path / "入井.md"])
    hits = kb.search("饮酒后可以入井吗", top_k=2).hits
    assert reranker.calls and reranker.calls[0][0] == "饮酒后可以入井吗"
    assert hits[0].article == "第二条" and hits[0].ranks["rerank"] == 1  # the marker won over the match
    knowledge.close()


def test_reranker_setting_is_checked() -> None:
    assert load_reranker("") is None
    with pytest.raises(UserInputError, match="gguf"):
        load_reranker("bge-reranker")
    with pytest.raises(UserInputError, match="does not exist"):
        load_reranker("/nonexistent/bge-reranker-v2-m3.gguf")


class ScriptedEngine:
    """An engine that streams a fixed reply (no >= 7B model can run here), recording its prompts."""

    def __init__(self, reply: str, parameters: int | None) -> None:
        self.info = EngineInfo(
            model_name="scripted", engine="scripted", context_tokens=4096, parameters=parameters
        )
        self.reply = reply
        self.prompts: list[str] = []

    def render_chat(
        self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True
    ) -> RenderedPrompt:
        return RenderedPrompt("\n".join(m.content for m in messages) + "<think>\n", opens_reasoning=True)

    def count_tokens(self, text: str, *, parse_special: bool = True) -> int:
        return len(text)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        self.prompts.append(request.prompt)
        for i in range(0, len(self.reply), 4):
            yield TextDelta(self.reply[i : i + 4])
        yield Finished("stop", Usage(10, 10))


def test_rewriting_is_off_by_default_and_only_for_capable_models(tmp_path: Path) -> None:
    assert load_settings(home=tmp_path).kb_query_rewrite is False
    assert not can_rewrite(EngineInfo("smollm2", "llama.cpp", 2048, parameters=135_000_000))
    assert not can_rewrite(EngineInfo("unknown", "llama.cpp", 2048))
    assert can_rewrite(EngineInfo("deepseek-r1-distill-qwen-7b", "llama.cpp", 8192, parameters=7_600_000_000))
    small = ScriptedEngine("饮酒 入井", parameters=135_000_000)
    assert asyncio.run(rewrite_query(small, "喝了点酒还能下井吗？")) == [] and small.prompts == []


def test_parse_rewrites_keeps_search_lines_only() -> None:
    text = "1. 饮酒后能否入井\n\n2、酒后入井的规定\n喝了点酒还能下井吗？\n" + "长" * 200
    assert parse_rewrites(text, "喝了点酒还能下井吗？") == ["饮酒后能否入井", "酒后入井的规定"]


def test_rewrites_of_a_capable_model_reach_the_search(rules_kb: KnowledgeBase) -> None:
    engine = ScriptedEngine("想一想</think>\n入井人员随身携带的装备\n", parameters=7_600_000_000)
    rules_kb.query_rewrite = True

    async def acquire() -> ScriptedEngine:
        return engine

    grounded, used = asyncio.run(ground(rules_kb, "下去要带啥？", acquire, min_score=0.0))  # type: ignore[arg-type]
    assert used is engine and len(engine.prompts) == 1 and "下去要带啥" in engine.prompts[0]
    top = grounded.citations[0].hit
    assert top.article == "第二条" and any(name.startswith("bm25:") for name in top.ranks)


def test_document_neighbours_of_top_hits_are_lifted(rules_kb: KnowledgeBase) -> None:
    question = "喝了点酒还能下井吗？"
    first = rules_kb.search(question, top_k=1, mode="bm25").hits[0]
    neighbours = rules_kb.index.neighbours([first.chunk_id])[first.chunk_id]
    assert [h.article for h in rules_kb.index.hits([ScoredChunk(n, 0.0) for n in neighbours])] == ["第二条"]
    plain = search(rules_kb.index, rules_kb.embedder, question, top_k=10, neighbour_weight=0.0)
    lifted = search(rules_kb.index, rules_kb.embedder, question, top_k=10, neighbour_weight=5.0)
    rank = {h.article + h.file: i for i, h in enumerate(lifted.hits)}
    second = next(h for h in lifted.hits if h.article == "第二条" and "入井" in h.file)
    assert second.ranks.get("neighbour") == 1  # lent by the top hit, 第一条
    assert rank[second.article + second.file] <= 1
    assert [h.chunk_id for h in plain.hits] != [h.chunk_id for h in lifted.hits]
