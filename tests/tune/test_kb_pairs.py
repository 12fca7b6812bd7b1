"""`bendi tune-data`: tuning pairs written from a real knowledge base (three articles of the mining
safety law, indexed by `bendi kb`), questions by SmolLM2, answers the passages themselves, cited;
the file is what `bendi tune --data` reads."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import bendi
from bendi.tune.data import load_tune_data
from bendi.tune.kb_pairs import question_from

BENDI = str(Path(sys.executable).parent / "bendi")
LAW = (
    Path(bendi.__file__).parent
    / "demo"
    / "mining-safety-cn"
    / "lawrefbook"
    / "社会法"
    / "矿山安全法(2009-08-27).md"
)


def test_pairs_from_a_knowledge_base(tmp_path: Path) -> None:
    articles = [
        line
        for line in LAW.read_text(encoding="utf-8").splitlines()
        if re.match(r"^第[一二三四五六七八九十]+条", line)
    ]
    source = tmp_path / "矿山安全法.md"
    source.write_text("# 中华人民共和国矿山安全法\n\n" + "\n\n".join(articles[:3]) + "\n", encoding="utf-8")
    env = dict(os.environ, BENDI_HOME=str(tmp_path / "home"), BENDI_THREADS="2")
    for args in (("kb", "create", "law"), ("kb", "add", "law", str(source))):
        done = subprocess.run([BENDI, *args], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    out = tmp_path / "pairs.jsonl"
    done = subprocess.run([BENDI, "tune-data", "law", "--model", "smollm2:135m", "--out", str(out), "--count", "3"],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    pairs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert 1 <= len(pairs) <= 3 and len(load_tune_data(out).conversations) == len(pairs)
    for pair in pairs:
        assert pair["question"].strip() and pair["answer"].startswith("根据《矿山安全法》第")
        body = pair["answer"].split("：", 1)[1]
        assert any(body.startswith(article[:20]) or article[:20] in body for article in articles[:3])

    missing = subprocess.run([BENDI, "tune-data", "nothing", "--model", "smollm2:135m", "--out", str(out)],
                             env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert missing.returncode == 1 and "nothing" in missing.stderr


def test_a_question_is_read_from_the_writers_reply() -> None:
    passage = "第十条 每个矿井必须有两个以上能行人的安全出口。"
    assert (
        question_from("问题：每个矿井要有几个安全出口？\n答：两个", passage) == "每个矿井要有几个安全出口？"
    )
    assert (
        question_from("\n\nQ: How many exits must a mine have?", passage)
        == "How many exits must a mine have?"
    )
    assert question_from("第十条 每个矿井必须有两个以上能行人的安全出口。", passage) is None  # an echo
    assert question_from("  \n", passage) is None
