"""Knowledge-base style prompts (sources quoted in the answer) and helpers to run generations."""

from __future__ import annotations

import asyncio

from bendi.engines.llamacpp.engine import LlamaCppEngine
from bendi.engines.messages import ChatMessage, Finished, GenerationRequest, SamplingParams, TextDelta

ARTICLES = (
    "[1] (file: coal-mine-safety.md | Article 12)\nEvery coal mine shall install a methane monitoring "
    "system. When the methane concentration in the return airway exceeds 1.0 percent, workers shall "
    "stop work, cut off the power and evacuate to the fresh air station.\n\n"
    "[2] (file: coal-mine-safety.md | Article 13)\nVentilation shall be checked every shift by a "
    "qualified ventilation officer, who shall record the air volume in the ventilation log and report "
    "any shortfall to the chief engineer before the shift begins.\n\n"
    "[3] (file: water-hazards.md | Article 38)\nBefore tunnelling near old workings, the mine shall "
    "drill exploratory holes at least 30 metres ahead of the face; if water is found, tunnelling "
    "shall stop until the water has been drained and the drainage has been checked."
)
SYSTEM = (
    "You answer questions using ONLY the numbered sources the user provides. Quote the sources "
    "word for word and cite them as [1], [2]."
)
QUESTIONS = (
    "What must workers do when methane exceeds 1.0 percent? Quote article 12 in full.",
    "Who checks ventilation, and what do they record? Quote article 13.",
    "What must be done before tunnelling near old workings? Quote article 38.",
    "Summarise the three articles, quoting each one.",
    "What does article 12 say about the fresh air station?",
    "Quote the article about exploratory holes.",
    "When is the ventilation shortfall reported?",
    "List every duty of the mine in the sources, word for word.",
)


def kb_user(question: str) -> str:
    return f"<sources>\n{ARTICLES}\n</sources>\n\nQuestion: {question}\nAnswer with citations like [1]."


def kb_prompt(engine: LlamaCppEngine, question: str, history: tuple[ChatMessage, ...] = ()) -> str:
    return engine.render_chat(
        [ChatMessage("system", SYSTEM), *history, ChatMessage("user", kb_user(question))]
    ).text


async def collect(
    engine: LlamaCppEngine, prompt: str, client_id: str = "anonymous", **params: object
) -> tuple[str, Finished, list[str]]:
    """(text, Finished, the deltas one by one) of one generation."""
    deltas: list[str] = []
    finished = None
    request = GenerationRequest(prompt, SamplingParams(**params), client_id=client_id)  # type: ignore[arg-type]
    async for event in engine.generate(request):
        if isinstance(event, TextDelta):
            deltas.append(event.text)
        else:
            finished = event
    assert finished is not None
    return "".join(deltas), finished, deltas


def run_all(
    engine: LlamaCppEngine, prompts: list[str], **params: object
) -> list[tuple[str, Finished, list[str]]]:
    """Generate for all prompts at once (one batch in the scheduler)."""

    async def scenario() -> list[tuple[str, Finished, list[str]]]:
        return list(await asyncio.gather(*(collect(engine, p, **params) for p in prompts)))

    return asyncio.run(scenario())


def long_kb_users(count: int) -> list[str]:
    """Chinese knowledge-base questions over five articles of the demo mining library each: prompts of
    ~900-1,600 tokens, past the 512-token KV length where llama.cpp's attention changes strategy."""
    import re
    from pathlib import Path

    import bendi

    library = Path(bendi.__file__).parent / "demo" / "mining-safety-cn" / "coalqa"
    article = re.compile(r"^(第[一二三四五六七八九十百零]+条)(.*)$")
    lines = (library / "26-煤矿防治水细则.txt").read_text(encoding="utf-8").splitlines()
    items = [
        m.groups()
        for m in (article.match(x.replace("\\n", "").strip()) for x in lines)
        if m and len(m.group(2)) > 30
    ]
    users = []
    for index in range(0, len(items), max(1, len(items) // count))[:count]:
        near = [items[(index + k) % len(items)] for k in range(5)]
        sources = "\n\n".join(
            f"[{i + 1}] (文件 file: 煤矿防治水细则.txt | {n})\n{n}{t}" for i, (n, t) in enumerate(near)
        )
        question = f"《煤矿防治水细则》{near[0][0]}是怎么规定的？请引用原文回答。"
        users.append(
            f"<sources>\n{sources}\n</sources>\n\nQuestion: {question}\nAnswer with citations like [1]."
        )
    return users
