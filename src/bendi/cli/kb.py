"""`bendi kb`: create knowledge bases, add documents, search them and ask questions with citations."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shlex
import sys
import unicodedata
from typing import Any

from bendi.access.scope import KbScope
from bendi.cli import kb_access
from bendi.core.settings import load_settings


def register(subparsers: Any) -> None:
    kb = subparsers.add_parser("kb", help="knowledge bases: import documents, search, ask with citations")
    sub = kb.add_subparsers(dest="kb_command", metavar="ACTION", required=True)

    p = sub.add_parser("create", help="create an empty knowledge base")
    p.add_argument("name", help="any script, e.g. 煤矿安全法规; later commands take it or the identifier")
    p.add_argument("--description", default="")
    p.add_argument("--embedding-model", help="embedder name (default: settings.embedding_model)")
    p.set_defaults(func=_create)

    p = sub.add_parser("add", help="add files or folders (recursive); unchanged files are skipped")
    p.add_argument("name")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--tag", action="append", default=[], help="tag the added documents (repeatable)")
    p.set_defaults(func=_add)

    p = sub.add_parser("list", help="list knowledge bases")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_list)

    p = sub.add_parser("docs", help="list the documents of a knowledge base")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_docs)

    p = sub.add_parser("rm", help="delete a knowledge base, or one document of it")
    p.add_argument("name")
    p.add_argument("doc", nargs="?", help="document id or file as added")
    p.set_defaults(func=_rm)

    p = sub.add_parser("search", help="ranked passages for a query")
    p.add_argument("name")
    p.add_argument("query")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--mode", choices=("hybrid", "bm25", "dense"), default="hybrid")
    p.add_argument(
        "--json", action="store_true", help="print hits as JSON (file, page, article, heading, score, text)"
    )
    p.set_defaults(func=_search)

    p = sub.add_parser("ask", help="answer a question from the knowledge base, with numbered sources")
    p.add_argument("name")
    p.add_argument("question")
    p.add_argument("--model", help="chat model (default: the default model)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--hide-thinking", action="store_true")
    p.set_defaults(func=_ask)

    p = sub.add_parser(
        "examples",
        help="answered example questions that steer search to their citations: import, list, remove",
    )
    p.add_argument("name")
    p.add_argument(
        "file", nargs="?", help='JSON Lines to import: {"question": ..., "citations": [{"document": ..., '
        '"article": "第十条"} or {"document": ..., "quote": ...}]}; without it, list them'
    )  # fmt: skip
    p.add_argument("--rm", type=int, metavar="ID", help="remove one example")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_examples)

    p = sub.add_parser("demo", help="create the demo base `mining` from the regulations shipped with bendi")
    p.set_defaults(func=_demo)

    kb_access.register(sub)  # grant, revoke, access


def _services() -> Any:
    from bendi.services import build_services

    return build_services(load_settings())


def _scope() -> KbScope:
    """Every base: the CLI runs as the machine's operator straight on the data directory, whose files
    that operator can read anyway; access lists govern the server's callers, not this account."""
    return KbScope.everything()


def _arg(name: str) -> str:
    """A name as a shell argument: as is when it needs no quoting (Chinese included), else quoted."""
    return name if re.fullmatch(r"\w[\w.\-]*", name) else shlex.quote(name)


def _pad(text: str, width: int) -> str:
    """Left-justify for a terminal, where CJK characters take two columns."""
    columns = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(0, width - columns)


def _create(args: argparse.Namespace) -> int:
    kb = _services().knowledge.create(args.name, args.description, args.embedding_model)
    kb_access.after_create(kb.name)  # team mode: owned by the first administrator
    named = kb.display_name if kb.display_name == kb.name else f"{kb.display_name} (identifier {kb.name})"
    print(f"Created knowledge base {named}, embedding model {kb.embedding_model}.")
    print(f"Add documents with: bendi kb add {_arg(kb.display_name)} PATH...")
    return 0


def _add(args: argparse.Namespace) -> int:
    from bendi.knowledge.ingest import IngestProgress, ingest_paths

    kb = _services().knowledge.get(args.name, _scope())
    tty = sys.stderr.isatty()

    def show(p: IngestProgress) -> None:
        line = (f"[{p.files_done}/{p.files_total} files] {p.pages_done} pages, {p.chunks_done} chunks, "
                f"{p.chunks_per_s:.1f} chunks/s  {p.current_file[-60:]}")  # fmt: skip
        print(("\r\x1b[2K" if tty else "") + line, end="" if tty else "\n", file=sys.stderr, flush=True)

    outcomes = ingest_paths(kb, args.paths, tags=args.tag, progress=show)
    if tty:
        print(file=sys.stderr)
    failed = 0
    for o in outcomes:
        detail = f"{o.chunks} chunks" if o.status in ("indexed", "unchanged") else (o.error or "")
        print(f"{o.status:10} {o.file}  {detail}")
        failed += o.status == "failed"
    counts = {
        s: sum(o.status == s for o in outcomes) for s in ("indexed", "unchanged", "needs_ocr", "failed")
    }
    print(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no supported files found")
    return 1 if failed else 0


def _demo(args: argparse.Namespace) -> int:
    from bendi.knowledge.ingest import IngestProgress
    from bendi.ops.demo import DEMO_BASE_NAME, create_demo

    tty = sys.stderr.isatty()

    def show(p: IngestProgress) -> None:
        line = f"[{p.files_done}/{p.files_total} files] {p.chunks_done} chunks, {p.chunks_per_s:.1f} chunks/s"
        print(("\r\x1b[2K" if tty else "") + line, end="" if tty else "\n", file=sys.stderr, flush=True)

    result = create_demo(_services().knowledge, progress=show)
    if tty:
        print(file=sys.stderr)
    name = result.kb.display_name
    if not result.is_demo:
        print(f"A knowledge base named {name} exists already and is not the demo; it was left as it is. "
              f"Remove it first (bendi kb rm {_arg(name)}) to create the demo.")  # fmt: skip
        return 1
    if result.created:
        kb_access.after_create(result.kb.name)
    failed = [o for o in result.outcomes if o.status == "failed"]
    for o in failed:
        print(f"failed     {o.file}  {o.error or ''}")
    info = result.kb.info()
    if result.created:
        print(f"Created the demo knowledge base {name}: {info.documents} documents, {info.chunks} chunks.")
    elif result.added:
        print(f"The demo knowledge base {name} exists already; added {result.added} missing file(s) "
              f"({info.documents} documents now).")  # fmt: skip
    else:
        print(f"The demo knowledge base {name} exists already ({info.documents} documents, up to date).")
    print(f'Try: bendi kb ask {DEMO_BASE_NAME} "矿山建设工程的安全设施必须和主体工程同时设计吗？"')
    return 1 if failed else 0


def _list(args: argparse.Namespace) -> int:
    infos = _services().knowledge.list(_scope())
    if args.json:
        print(json.dumps([i.to_json() for i in infos], ensure_ascii=False, indent=2))
        return 0
    if not infos:
        print("No knowledge bases yet. Create one with `bendi kb create NAME`.")
    for i in infos:
        ident = "" if i.display_name == i.name else f"({i.name})"
        print(f"{_pad(i.display_name, 24)} {_pad(ident, 20)} {i.documents:5} docs {i.chunks:7} chunks  "
              f"{i.embedding_model}  {i.description}".rstrip())  # fmt: skip
    return 0


def _docs(args: argparse.Namespace) -> int:
    docs = _services().knowledge.get(args.name, _scope()).documents()
    if args.json:
        print(json.dumps([d.to_json() for d in docs], ensure_ascii=False, indent=2))
        return 0
    for d in docs:
        extra = f"  {d.error}" if d.error else ""
        print(f"{d.id:5} {d.status:10} {d.pages:4}p {d.chunks:5}c  {d.file}{extra}")
    return 0


def _rm(args: argparse.Namespace) -> int:
    knowledge = _services().knowledge
    kb = knowledge.get(args.name, _scope())
    shown = kb.display_name  # read before a delete takes the base's index away
    if args.doc is None:
        knowledge.delete(kb.name, _scope())
        kb_access.after_delete(kb.name)
        print(f"Deleted knowledge base {shown}.")
        return 0
    doc = kb.find_document(args.doc)
    kb.delete_document(doc.id)
    print(f"Removed {doc.file} from {shown}.")
    return 0


def _examples(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bendi.core.errors import UserInputError
    from bendi.knowledge.examples import parse_examples

    kb = _services().knowledge.get(args.name, _scope())
    if args.rm is not None:
        kb.delete_example(args.rm)
        print(f"Removed example {args.rm} from {kb.display_name}.")
        return 0
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise UserInputError(f"There is no examples file {args.file}.")
        count = kb.add_examples(parse_examples(path.read_text(encoding="utf-8", errors="replace")))
        print(f"Stored {count} example questions in {kb.display_name}.")
        return 0
    _, examples = kb.examples()
    if args.json:
        print(json.dumps([e.to_json() for e in examples], ensure_ascii=False, indent=2))
        return 0
    for e in examples:
        cites = (
            "; ".join(f"{c.document} {c.article or repr(c.quote)}" for c in e.citations)
            or "(no citations left)"
        )
        print(f"{e.id:5}  {e.question}\n       -> {cites}")
    if not examples:
        print(f"No example questions in {kb.display_name}; import some with: bendi kb examples NAME FILE")
    return 0


def _search(args: argparse.Namespace) -> int:
    result = (
        _services().knowledge.get(args.name, _scope()).search(args.query, top_k=args.top_k, mode=args.mode)
    )
    if args.json:
        keys = ("file", "page", "article", "heading", "score", "text", "doc_id", "chunk_id")
        print(
            json.dumps([{k: h.to_json()[k] for k in keys} for h in result.hits], ensure_ascii=False, indent=2)
        )
        return 0
    for rank, h in enumerate(result.hits, start=1):
        where = " ".join(x for x in (h.file, f"p.{h.page}" if h.page else "", h.article or "") if x)
        print(f"{rank}. [{h.score:.4f}] {where}\n   {h.text[:300]}\n")
    if not result.hits:
        print("No matching passages.")
    return 0


def _ask(args: argparse.Namespace) -> int:
    from bendi.knowledge.answer import stream_answer

    services = _services()
    kb = services.knowledge.get(args.name, _scope())

    async def run() -> int:
        engine = await services.engines.acquire(args.model)
        citations: tuple[Any, ...] = ()
        in_reasoning = False
        try:
            async for event in stream_answer(kb, args.question, engine, top_k=args.top_k, max_tokens=args.max_tokens,
                                             min_score=services.settings.kb_min_similarity):  # fmt: skip
                if event.kind == "citations":
                    citations = event.citations
                elif event.kind == "reasoning" and not args.hide_thinking:
                    if not in_reasoning:
                        print("Thinking…", file=sys.stderr)
                        in_reasoning = True
                    print(event.text, end="", file=sys.stderr, flush=True)
                elif event.kind == "content":
                    if in_reasoning:
                        print("\n", file=sys.stderr)
                        in_reasoning = False
                    print(event.text, end="", flush=True)
                elif event.kind == "done":
                    print()
                    for note in event.notes:
                        print(f"note: {note}", file=sys.stderr)
            if citations:
                print("\nSources:")
                for c in citations:
                    h = c.hit
                    where = ", ".join(
                        x for x in (f"page {h.page}" if h.page else "", h.article or "", h.heading) if x
                    )
                    print(f"[{c.index}] {h.file}" + (f" ({where})" if where else ""))
            return 0
        finally:
            await services.aclose()

    return asyncio.run(run())
