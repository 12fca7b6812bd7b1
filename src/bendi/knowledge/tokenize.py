"""Word segmentation for BM25: jieba for Chinese (search mode), lower-cased words for the rest."""

from __future__ import annotations

import logging
import re
import threading
from functools import lru_cache
from typing import Any

_lock = threading.Lock()
_KEEP = re.compile(r"[\w\u3400-\u9fff]", re.UNICODE)
# Function words that match almost every passage and only add noise to BM25.
STOPWORDS = frozenset(
    [
        "的",
        "了",
        "是",
        "在",
        "和",
        "与",
        "或",
        "及",
        "等",
        "对",
        "为",
        "以",
        "于",
        "由",
        "把",
        "被",
        "将",
        "从",
        "向",
        "其",
        "之",
        "而",
        "也",
        "就",
        "都",
        "并",
        "且",
        "这",
        "那",
        "有",
        "个",
        "吗",
        "呢",
        "吧",
        "啊",
        "么",
        "什么",
        "怎么",
        "如何",
        "哪些",
        "是否",
        "可以",
        "应该",
        "应当",
        "一个",
        "没有",
        "这个",
        "那个",
        "我",
        "你",
        "他",
        "她",
        "它",
        "我们",
        "他们",
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "on",
        "for",
        "and",
        "or",
        "is",
        "are",
        "was",
        "were",
        "be",
        "by",
        "with",
        "as",
        "at",
        "it",
        "this",
        "that",
        "what",
        "how",
        "which",
    ]
)


@lru_cache(maxsize=1)
def _jieba() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    return tokenizer


def tokens(text: str) -> list[str]:
    with _lock:  # jieba's tokenizer is not documented thread-safe; segmentation is cheap vs embedding
        words = _jieba().cut_for_search(text)
        out = [w.strip().lower() for w in words]
    return [w for w in out if w and _KEEP.search(w) and w not in STOPWORDS]


def segment(text: str) -> str:
    """The text as space-separated tokens, the form stored in the FTS5 table."""
    return " ".join(tokens(text))


def query_terms(text: str, limit: int = 64) -> list[str]:
    """The query's distinct tokens in order (stopwords and punctuation are already gone), bounded."""
    return list(dict.fromkeys(tokens(text)))[:limit]


def fts_expression(terms: list[str]) -> str:
    """An FTS5 MATCH expression: any of the terms (BM25 ranks by how many and how rare)."""
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in terms)


def fts_query(text: str) -> str:
    return fts_expression(query_terms(text))
