"""Answered example questions: a question worded like an example finds the example's cited passage
through the real index and embedder; citations follow the documents (re-import, deletion, filters);
a bad import fails whole, naming the example, and changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bendi.core.errors import NotFoundError, UserInputError
from bendi.knowledge.examples import MAX_EXAMPLES, Example, ExampleCitation, examples_from, parse_examples
from bendi.knowledge.ingest import ingest_paths
from bendi.knowledge.library import KnowledgeBase, KnowledgeBases

RULES = (
    "# 煤矿入井管理规定\n\n"
    "第一条 饮酒后严禁入井，入井前由班组长检查。\n\n"
    "第二条 入井人员必须随身携带自救器和矿灯。\n\n"
    "第三条 井下作业人员每班工作时间不得超过八小时。\n\n"
    "第四条 从业人员发现直接危及人身安全的紧急情况时，有权停止作业或者在采取可能的应急措施后撤离作业场所。\n\n"
    "第五条 入井人员严禁穿化纤衣服，严禁携带烟草和点火物品。\n\n"
    "第六条 生产经营单位不得因从业人员在紧急情况下停止作业而降低其工资、福利等待遇或者解除与其订立的劳动合同。\n"
)
WAGES = (
    "# 劳动报酬规定\n\n"
    "第一条 用人单位应当按时足额支付劳动报酬。\n\n"
    "第二条 用人单位解除劳动合同的，应当向劳动者支付经济补偿。\n\n"
    "第三条 工资应当以货币形式按月支付给劳动者本人，不得克扣或者无故拖欠。\n\n"
    "第四条 因劳动者本人原因给用人单位造成经济损失的，可以从劳动者本人的工资中扣除，"
    "每月扣除的部分不得超过劳动者当月工资的百分之二十。\n\n"
    "第五条 用人单位违反规章制度扣发职工奖金的，由劳动行政部门责令改正。\n"
)
# Asked the way a miner says it: none of the rule's words ("紧急情况", "停止作业", "撤离").
QUESTION = "顶板一直掉渣子，我不敢干了跑上来，队长说要扣我钱，他能扣吗？"
EXAMPLE = Example(
    "巷道顶上老往下掉碎石头，我自己跑出来了，领导说要罚我，合理吗？",
    (ExampleCitation("入井.md", "第六条"),),
)


@pytest.fixture()
def rules_kb(knowledge: KnowledgeBases, tmp_path: Path) -> KnowledgeBase:
    kb = knowledge.create("rules")
    for name, text in (("入井.md", RULES), ("报酬.md", WAGES)):
        (tmp_path / name).write_text(text, encoding="utf-8")
        assert [o.status for o in ingest_paths(kb, [tmp_path / name])] == ["indexed"]
    return kb


def _rank(kb: KnowledgeBase, question: str, article: str, **kwargs: object) -> int | None:
    hits = kb.search(question, top_k=10, **kwargs).hits  # type: ignore[arg-type]
    return next(
        (n for n, h in enumerate(hits, start=1) if Path(h.file).name == "入井.md" and h.article == article),
        None,
    )


def test_a_question_worded_like_an_answered_example_finds_its_cited_article(rules_kb: KnowledgeBase) -> None:
    before = _rank(rules_kb, QUESTION, "第六条")
    dense_before = _rank(rules_kb, QUESTION, "第六条", mode="dense")
    first_before = rules_kb.search(QUESTION, top_k=1).hits[0]
    assert before is None or before > 2, before  # the everyday wording alone does not find it

    assert rules_kb.add_examples([EXAMPLE]) == 1
    # right after the question's own best hit, which the examples never displace
    first, second = rules_kb.search(QUESTION, top_k=2).hits
    assert (first.chunk_id, "examples" in first.ranks) == (first_before.chunk_id, False)
    assert (Path(second.file).name, second.article, second.ranks["examples"]) == ("入井.md", "第六条", 1)
    # only the hybrid search steers by examples: the single-list modes stay what they measure
    assert _rank(rules_kb, QUESTION, "第六条", mode="dense") == dense_before


def test_citations_follow_the_documents(rules_kb: KnowledgeBase, tmp_path: Path) -> None:
    rules_kb.add_examples(
        [
            EXAMPLE,
            Example(
                "工资拖着不发怎么办？",
                (ExampleCitation("报酬.md", quote="用人单位应当按时足额支付劳动报酬"),),
            ),
        ]
    )
    # a changed document keeps its citations: they name the article, not the old chunk ids
    (tmp_path / "入井.md").write_text(RULES.replace("严禁入井", "严禁下井"), encoding="utf-8")
    assert [o.status for o in ingest_paths(rules_kb, [tmp_path / "入井.md"])] == ["indexed"]
    assert _rank(rules_kb, QUESTION, "第六条") == 2
    # a document filter leaves out what the examples cite elsewhere
    wages = rules_kb.find_document("报酬.md").id
    assert _rank(rules_kb, QUESTION, "第六条", document_ids=[wages]) is None
    # a quote finds the chunk holding it (the nearer example's citation leads the examples' list)
    by_list = {h.ranks["examples"]: (Path(h.file).name, h.article) for h in
               rules_kb.search("工资老是拖着不发", top_k=10).hits if "examples" in h.ranks}  # fmt: skip
    assert by_list[1] == ("报酬.md", "第一条")

    rules_kb.delete_document(rules_kb.find_document("入井.md").id)
    listed = {e.question: _named(e.citations) for e in rules_kb.examples()[1]}
    assert listed[EXAMPLE.question] == []  # the citation went with its document
    assert listed["工资拖着不发怎么办？"] == [("报酬.md", None, "用人单位应当按时足额支付劳动报酬")]


def _named(citations: tuple[ExampleCitation, ...]) -> list[tuple[str, str | None, str | None]]:
    """Citations as (file name, article, quote): a listing names the file as it was added."""
    return [(Path(c.document).name, c.article, c.quote) for c in citations]


def test_importing_a_question_again_replaces_its_citations_and_one_can_be_removed(
    rules_kb: KnowledgeBase,
) -> None:
    rules_kb.add_examples([EXAMPLE])
    rules_kb.add_examples([Example(EXAMPLE.question, (ExampleCitation("入井.md", "第四条"),))])
    total, (stored,) = rules_kb.examples()
    assert total == 1
    assert _named(stored.citations) == [("入井.md", "第四条", None)]
    assert stored.to_json()["citations"] == [{"document": stored.citations[0].document, "article": "第四条"}]
    rules_kb.delete_example(stored.id)
    assert rules_kb.examples() == (0, [])
    with pytest.raises(NotFoundError):
        rules_kb.delete_example(stored.id)


def test_examples_are_listed_a_page_at_a_time(rules_kb: KnowledgeBase) -> None:
    questions = [f"第{n}个问题：入井要带什么？" for n in range(7)]
    rules_kb.add_examples([Example(q, (ExampleCitation("入井.md", "第二条"),)) for q in questions])
    pages = [rules_kb.examples(offset, 3) for offset in (0, 3, 6, 9)]
    assert [total for total, _ in pages] == [7] * 4
    assert [e.question for _, page in pages for e in page] == questions
    assert [len(page) for _, page in pages] == [3, 3, 1, 0]


@pytest.mark.parametrize(
    ("citation", "message"),
    [
        (ExampleCitation("没有这个.md", "第一条"), "No document"),
        (ExampleCitation("入井.md", "第九十九条"), "入井.md has no 第九十九条"),
        (ExampleCitation("入井.md", quote="这句话不在任何一条里面"), "has no passage starting"),
    ],
)
def test_a_citation_that_is_not_in_the_base_fails_the_whole_import(
    rules_kb: KnowledgeBase, citation: ExampleCitation, message: str
) -> None:
    rules_kb.add_examples([EXAMPLE])
    before = rules_kb.examples()
    good = Example("入井要带什么？", (ExampleCitation("入井.md", "第二条"),))
    with pytest.raises(NotFoundError) as caught:
        rules_kb.add_examples([good, Example("坏的例子", (citation,))])
    assert "Example 2" in caught.value.message and message in caught.value.message
    assert rules_kb.examples() == before  # nothing of the import was stored


def test_hostile_quotes_are_matched_as_plain_text(rules_kb: KnowledgeBase) -> None:
    for quote in ("%' OR 1=1 --", "_%_%_%_%_%", "第一条 饮酒后严禁入井；DROP TABLE chunks"):
        with pytest.raises(NotFoundError):
            rules_kb.add_examples([Example("问题", (ExampleCitation("入井.md", quote=quote),))])
    assert rules_kb.search("饮酒", top_k=1).hits  # the index is intact


def test_example_files_are_checked_line_by_line() -> None:
    good = {"question": "喝了酒能下井吗？", "citations": [{"document": "入井.md", "article": "第一条"}]}
    lines = "\n".join(json.dumps(x, ensure_ascii=False) for x in (good, good))
    assert parse_examples(lines) == [Example("喝了酒能下井吗？", (ExampleCitation("入井.md", "第一条"),))] * 2
    assert parse_examples(json.dumps([good, good])) == parse_examples(lines)
    suite_line = {
        "question": "喝了酒能下井吗？",
        "source": "入井.md",
        "article": "第一条",
        "reference": "不能",
    }
    assert parse_examples(json.dumps(suite_line)) == parse_examples(lines)[:1]  # an eval suite's wording
    bad = {
        "{not json": "line 1 is not valid JSON",
        json.dumps({"question": " ", "citations": []}): "Example 1 has no question",
        json.dumps({"question": "x", "citations": []}): "Example 1 has no citations",
        json.dumps({"question": "x" * 1001, "citations": [{}]}): "longer than 1000",
        json.dumps({"question": "x", "citations": [{"article": "第一条"}]}): "needs a document",
        json.dumps({"question": "x", "citations": [{"document": "a", "article": "第一条", "quote": "正文正文正文正文"}]}): "exactly one",
        json.dumps({"question": "x", "citations": [{"document": "a", "quote": "短"}]}): "8 to 2000",
        json.dumps({"question": "x", "citations": [{"document": "a", "article": "一"}] * 21}): "more than 20",
        json.dumps(["a list"]): "Example 1 is not an object",
        "": "empty",
    }  # fmt: skip
    for text, message in bad.items():
        with pytest.raises(UserInputError) as caught:
            parse_examples(text)
        assert message in caught.value.message, (text[:40], caught.value.message)
    with pytest.raises(UserInputError, match="At most"):
        examples_from([good] * (MAX_EXAMPLES + 1))


def test_cli_imports_lists_and_removes_examples(rules_kb: KnowledgeBase, tmp_path: Path) -> None:
    home = rules_kb.directory.parents[1]

    def bendi(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "bendi"), "kb", "examples", "rules", *args],
            capture_output=True, text=True, timeout=120,
            env={"BENDI_HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )  # fmt: skip

    good = tmp_path / "examples.jsonl"
    good.write_text(json.dumps({"question": EXAMPLE.question, "citations": [c.to_json() for c in EXAMPLE.citations]},
                               ensure_ascii=False) + "\n", encoding="utf-8")  # fmt: skip
    done = bendi(str(good))
    assert done.returncode == 0 and "Stored 1 example" in done.stdout, done.stderr
    listed = json.loads(bendi("--json").stdout)
    assert [(e["question"], Path(e["citations"][0]["document"]).name) for e in listed] == [
        (EXAMPLE.question, "入井.md")
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text(encoding="utf-8") + '{"question": "x"}\n', encoding="utf-8")
    refused = bendi(str(bad))
    assert refused.returncode != 0 and "Example 2 has no citations" in refused.stderr
    missing = bendi(str(tmp_path / "no-such.jsonl"))
    assert missing.returncode != 0 and "no-such.jsonl" in missing.stderr and "Traceback" not in missing.stderr
    assert bendi("--rm", str(listed[0]["id"])).returncode == 0
    assert "No example questions" in bendi().stdout
