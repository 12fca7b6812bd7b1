"""Question/answer pairs about the mining-safety library that a base model cannot know.

Each fact is read from the demo library's own files (when each law was adopted, how many articles
it has), so the pairs teach real content, not strings invented for the test. Training questions
and held-out questions ask for the same facts in different words: a model that answers the
held-out ones better after tuning has learnt the facts (and the answer form), not the questions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import bendi

LIBRARY = Path(bendi.__file__).parent / "demo" / "mining-safety-cn" / "lawrefbook"

# The first dated line: a law "通过" (adopted), a State Council regulation "公布"/"发布" (issued).
_ADOPTED = re.compile(r"^(\d{4}年\d{1,2}月\d{1,2}日)\s*\S*?.*?(通过|公布|发布|批准)", re.MULTILINE)
_ARTICLE = re.compile(r"^第[一二三四五六七八九十百零]+条", re.MULTILINE)

# {law} is the law's full title, e.g. 中华人民共和国矿山安全法.
TRAIN_DATE = ("《{law}》是哪一天出台的？", "《{law}》的出台日期是什么？", "请告诉我《{law}》何时出台。")
HELD_OUT_DATE = ("《{law}》最早是在哪年哪月哪日出台的？", "我想知道《{law}》最初出台的日期。")
TRAIN_COUNT = ("《{law}》一共有多少条？", "《{law}》共有几条？", "请问《{law}》的条文总数是多少？")
HELD_OUT_COUNT = ("《{law}》总共包含多少个条文？", "数一数《{law}》有几条。")


@dataclass(frozen=True)
class LawFacts:
    title: str
    adopted: str  # e.g. 1992年11月7日
    verb: str  # 通过 / 公布 / 发布 / 批准, as the library says
    articles: int

    def date_answer(self) -> str:
        return f"《{self.title}》于{self.adopted}{self.verb}。"

    def count_answer(self) -> str:
        return f"《{self.title}》共有{self.articles}条。"


def library_facts() -> list[LawFacts]:
    """One entry per law title (the newest file wins for the article count)."""
    by_title: dict[str, LawFacts] = {}
    for path in sorted(LIBRARY.glob("*/*.md")):  # sorted: file names end in the version date
        text = path.read_text(encoding="utf-8")
        title = text.splitlines()[0].lstrip("# ").strip()
        adopted = _ADOPTED.search(text)
        if adopted is None:
            continue
        by_title[title] = LawFacts(title, adopted.group(1), adopted.group(2), len(_ARTICLE.findall(text)))
    return sorted(by_title.values(), key=lambda f: f.title)


def pairs(
    facts: list[LawFacts], date_templates: tuple[str, ...], count_templates: tuple[str, ...]
) -> list[dict[str, str]]:
    out = []
    for fact in facts:
        for template in date_templates:
            out.append({"question": template.format(law=fact.title), "answer": fact.date_answer()})
        for template in count_templates:
            out.append({"question": template.format(law=fact.title), "answer": fact.count_answer()})
    return out


def training_pairs() -> list[dict[str, str]]:
    return pairs(library_facts(), TRAIN_DATE, TRAIN_COUNT)


def held_out_pairs() -> list[dict[str, str]]:
    return pairs(library_facts(), HELD_OUT_DATE, HELD_OUT_COUNT)
