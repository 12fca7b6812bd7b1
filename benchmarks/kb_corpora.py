"""Loaders for the retrieval benchmarks: LeCoQA over LawRefBook, CMRC 2018, PubMedQA (../shared data)."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bendi.knowledge.chunking import ARTICLE, chunk_blocks, context_text, embedding_text
from bendi.knowledge.parsers import parse_document
from bendi.knowledge.records import Chunk

SHARED = Path(__file__).resolve().parents[2] / "shared" / "rag-eval-data"
_PREFIX = "中华人民共和国"
_GOLD = re.compile(r"^(.*?)(第[一二三四五六七八九十百千零〇两\d]+条(?:之[一二三四五六七八九十]+)?)$")


@dataclass(frozen=True)
class Passage:
    key: str  # what a gold label names (law title + article, CMRC paragraph id, PubMed id)
    doc: str  # the document it belongs to
    title: str
    chunk: Chunk


@dataclass(frozen=True)
class Query:
    text: str
    gold: frozenset[str]


def norm_title(title: str) -> str:
    return title.strip().removeprefix(_PREFIX).replace(" ", "")


def law_passages(root: Path) -> Iterator[Passage]:
    """Every article of every statute file, one passage per chunk (long articles give several)."""
    for path in sorted(root.rglob("*.md")):
        rel = path.relative_to(root)
        if rel.parts[0] in ("案例", "其他") or path.name.startswith("_") or len(rel.parts) == 1:
            continue
        doc = parse_document(path)
        title = norm_title(doc.title)
        for chunk in chunk_blocks(doc.blocks):
            if chunk.article:
                yield Passage(f"{title}|{chunk.article}", str(rel), doc.title, chunk)


def _gold(item: dict[str, object]) -> frozenset[str]:
    gold = set()
    for name in item["match_name"]:  # type: ignore[attr-defined]
        match = _GOLD.match(name.strip())
        if match:
            gold.add(f"{norm_title(match.group(1))}|{match.group(2)}")
    return frozenset(gold)


def lecoqa_queries(limit: int | None, seed: int = 7) -> list[Query]:
    items = json.loads((SHARED / "legal-lecoqa-stard/lecoqa/example_test.json").read_text(encoding="utf-8"))
    queries = [Query(item["问题"], gold) for item in items if (gold := _gold(item))]
    random.Random(seed).shuffle(queries)
    return queries[:limit] if limit else queries


def lecoqa_train_queries() -> list[Query]:
    """LeCoQA's questions outside its test split (1,234, none of them in it word for word): what an
    organization's answered questions are to its knowledge base (bench --examples)."""
    root = SHARED / "legal-lecoqa-stard/lecoqa"
    test = {item["query_id"] for item in json.loads((root / "example_test.json").read_text(encoding="utf-8"))}
    items = json.loads((root / "queries.json").read_text(encoding="utf-8"))
    return [
        Query(item["问题"], gold) for item in items if item["query_id"] not in test and (gold := _gold(item))
    ]


def lecoqa_subset(passages: list[Passage], queries: list[Query], articles: int, neighbours: int = 5,
                  seed: int = 7) -> list[Passage]:  # fmt: skip
    """Gold articles, their same-law neighbours (hard negatives), then random articles up to `articles`."""
    by_doc: dict[str, list[int]] = {}
    for i, p in enumerate(passages):
        by_doc.setdefault(p.doc, []).append(i)
    gold = set().union(*(q.gold for q in queries))
    chosen: set[int] = set()
    for i, p in enumerate(passages):
        if p.key in gold:
            siblings = by_doc[p.doc]
            pos = siblings.index(i)
            chosen.update(siblings[max(0, pos - neighbours) : pos + neighbours + 1])
    rest = [i for i in range(len(passages)) if i not in chosen]
    random.Random(seed).shuffle(rest)
    chosen.update(rest[: max(0, articles - len(chosen))])
    return [passages[i] for i in sorted(chosen)]


def lecoqa_corpus(passages: list[Passage], queries: list[Query], others: int, seed: int = 7) -> list[Passage]:
    """Every article of every law a gold article comes from (all its same-law hard negatives), plus
    `others` random articles of other laws."""
    gold = set().union(*(q.gold for q in queries))
    gold_docs = {p.doc for p in passages if p.key in gold}
    rest = [i for i, p in enumerate(passages) if p.doc not in gold_docs]
    random.Random(seed).shuffle(rest)
    chosen = {i for i, p in enumerate(passages) if p.doc in gold_docs} | set(rest[:others])
    return [passages[i] for i in sorted(chosen)]


def cmrc(limit_questions: int, split: str = "trial", paragraphs: int | None = None,
         seed: int = 7) -> tuple[list[Passage], list[Query]]:  # fmt: skip
    """Paragraphs (a random sample when `paragraphs` is set) and questions about them."""
    data = json.loads((SHARED / f"cmrc2018/cmrc2018_{split}.json").read_text(encoding="utf-8"))["data"]
    paras = [(article.get("title", ""), para) for article in data for para in article["paragraphs"]]
    random.Random(seed).shuffle(paras)
    passages, queries = [], []
    for title, para in paras[:paragraphs] if paragraphs else paras:
        chunk = Chunk(0, para["context"], None, "", None, 0, len(para["context"]))
        passages.append(Passage(para["id"], para["id"], title, chunk))
        queries.extend(
            Query(qa["question"], frozenset({para["id"]})) for qa in para["qas"] if qa["question"].strip()
        )
    random.Random(seed).shuffle(queries)
    return passages, queries[:limit_questions]


def pubmedqa(limit: int, seed: int = 7) -> tuple[list[Passage], list[Query]]:
    data = json.loads((SHARED / "pubmedqa-en/ori_pqal.json").read_text(encoding="utf-8"))
    ids = sorted(data)
    random.Random(seed).shuffle(ids)
    passages, queries = [], []
    for pmid in ids[:limit]:
        item = data[pmid]
        for n, text in enumerate(item["CONTEXTS"]):  # one passage per labelled abstract section
            passages.append(Passage(pmid, pmid, "", Chunk(n, text, None, "", None, 0, len(text))))
        queries.append(Query(item["QUESTION"], frozenset({pmid})))
    return passages, queries


def passage_text(p: Passage) -> str:
    """What the product keyword-indexes for this passage."""
    return context_text(p.title, p.chunk)


def passage_embedding_text(p: Passage) -> str:
    """What the product embeds for this passage."""
    return embedding_text(p.title, p.chunk)


def article_of(text: str) -> str | None:
    match = ARTICLE.match(text)
    return match.group(1) if match else None
