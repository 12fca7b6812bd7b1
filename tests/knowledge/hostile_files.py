"""The bomb corpus of checklist R18/R19, built at test time: hostile PDFs, DOCX and XLSX files.

Each builder writes one file and returns its path. The PDFs are written by hand (objects + xref)
so that they can lie exactly where an attacker would."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

PASSWD_MARKERS = ("root:x:0:0", "/bin/bash", "/usr/sbin/nologin", "daemon:x:")
TEXT = "第一条 煤矿企业必须遵守国家有关安全生产的法律、法规、规章、规程、标准和技术规范。"


def _pdf(objects: list[bytes], root: int = 1) -> bytes:
    """A PDF from numbered object bodies (object i+1 = objects[i]) with a correct xref table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, root, xref)
    )
    return out.getvalue()


def _stream(data: bytes, extra: bytes = b"", length: int | None = None) -> bytes:
    declared = len(data) if length is None else length
    return b"<< /Length %d %s >>\nstream\n" % (declared, extra) + data + b"\nendstream"


_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
_ENGLISH = b"BT /F1 12 Tf 72 720 Td (Ventilation rules: every working face needs fresh air.) Tj ET"


def _page_objects(
    content: bytes, extra_catalog: bytes = b"", size: tuple[int, int] = (612, 792)
) -> list[bytes]:
    return [
        b"<< /Type /Catalog /Pages 2 0 R %s >>" % extra_catalog,
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>" % size,
        content,
        _FONT,
    ]


def nested_flate_pdf(path: Path, megabytes: int = 160) -> Path:
    """A page whose content is 160 MB (pypdf stops at 75) of zeros deflated three times over: a few KB on disk."""
    deflate = zlib.compressobj(9)
    block = b"\0" * (16 * 1024 * 1024)
    inner = b"".join(deflate.compress(block) for _ in range(megabytes // 16)) + deflate.flush()
    data = zlib.compress(zlib.compress(inner, 9), 9)
    filters = b"/Filter [/FlateDecode /FlateDecode /FlateDecode]"
    path.write_bytes(_pdf(_page_objects(_stream(data, filters))))
    return path


def length_lie_pdf(path: Path) -> Path:
    """A content stream that claims to be a terabyte long."""
    path.write_bytes(_pdf(_page_objects(_stream(_ENGLISH, length=10**12))))
    return path


def outline_cycle_pdf(path: Path) -> Path:
    """A readable page with an outline (bookmarks) whose items point at each other forever."""
    objects = _page_objects(_stream(_ENGLISH), b"/Outlines 6 0 R")
    objects += [
        b"<< /Type /Outlines /First 7 0 R /Last 8 0 R /Count 2 >>",
        b"<< /Title (A) /Parent 6 0 R /Next 8 0 R /First 8 0 R /Dest [3 0 R /Fit] >>",
        b"<< /Title (B) /Parent 6 0 R /Next 7 0 R /Prev 7 0 R /First 7 0 R /Dest [3 0 R /Fit] >>",
    ]
    path.write_bytes(_pdf(objects))
    return path


def grid_pdf(path: Path, lines: int = 600, spacing: int = 6) -> Path:
    """A text page ruled into a lines × lines grid of cells (a huge page: 6 pt apart, wider than
    pdfplumber's snapping): table detection, pure Python over every cell, takes minutes on it.
    A real file that makes a parser hang, no test hook needed."""
    side = 40 + lines * spacing
    ops = [
        b"BT /F1 12 Tf 20 %d Td (Ventilation rules: every working face needs fresh air.) Tj ET" % (side - 14)
    ]
    for i in range(lines + 1):
        at = 20 + i * spacing
        ops.append(b"%d 20 m %d %d l S" % (at, at, side - 20))
        ops.append(b"20 %d m %d %d l S" % (at, side - 20, at))
    path.write_bytes(_pdf(_page_objects(_stream(b"\n".join(ops)), size=(side, side))))
    return path


# --- Office ------------------------------------------------------------------------------------
_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    "</Types>"
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="word/document.xml"/></Relationships>'
)
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def _document_xml(dtd: str, body_text: str) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>{dtd}'
            f'<w:document xmlns:w="{_W}"><w:body><w:p><w:r><w:t>{TEXT}</w:t></w:r></w:p>'
            f"<w:p><w:r><w:t>{body_text}</w:t></w:r></w:p></w:body></w:document>")  # fmt: skip


def _docx(path: Path, document_xml: str | Callable[[zipfile.ZipFile], None]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        if callable(document_xml):
            document_xml(archive)
        else:
            archive.writestr("word/document.xml", document_xml)
    return path


def plain_docx(path: Path) -> Path:
    return _docx(path, _document_xml("", "矿井必须有完整的独立通风系统。"))


def xxe_docx(path: Path) -> Path:
    dtd = '<!DOCTYPE w:document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    return _docx(path, _document_xml(dtd, "&xxe;"))


def _laughs() -> str:
    entities = ['<!ENTITY lol0 "lollollollollollollollollollol">']
    entities += [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    return f"<!DOCTYPE w:document [{''.join(entities)}]>"


def billion_laughs_docx(path: Path) -> Path:
    return _docx(path, _document_xml(_laughs(), "&lol9;"))


def zip_bomb_docx(path: Path, megabytes: int = 640) -> Path:
    """document.xml of 640 MB (over the 512 MB cap; mostly spaces in a text run), ~650 KB compressed."""

    def write(archive: zipfile.ZipFile) -> None:
        head, tail = _document_xml("", "\x00").split("\x00")
        with archive.open("word/document.xml", "w", force_zip64=True) as part:
            part.write(head.encode())
            block = b" " * (16 * 1024 * 1024)
            for _ in range(megabytes // 16):
                part.write(block)
            part.write(tail.encode())

    return _docx(path, write)


def lying_size_docx(path: Path) -> Path:
    """A part whose headers claim 100 bytes while it holds 40 MB: sizes are counted, not believed."""
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        archive.writestr("word/document.xml", _document_xml("", " " * (40 * 1024 * 1024)))
    raw = bytearray(packed.getvalue())
    name = b"word/document.xml"
    # (signature, offset of the uncompressed size, offset of the name length, header length)
    for signature, size_at, name_len_at, header in ((b"PK\x03\x04", 22, 26, 30), (b"PK\x01\x02", 24, 28, 46)):
        at = raw.find(signature)
        while at >= 0:
            name_len = int.from_bytes(raw[at + name_len_at : at + name_len_at + 2], "little")
            if raw[at + header : at + header + name_len] == name:
                raw[at + size_at : at + size_at + 4] = (100).to_bytes(4, "little")
            at = raw.find(signature, at + 4)
    path.write_bytes(bytes(raw))
    return path


def _xlsx(path: Path, sheet_xml: str) -> Path:
    """A minimal workbook, one sheet, with the sheet XML given."""
    types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>'
    )
    rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
        'Target="xl/workbook.xml"/></Relationships>'
    )
    workbook = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<sheets><sheet name="限值" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )
    workbook_rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
        'Target="worksheets/sheet1.xml"/></Relationships>'
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", types)
        archive.writestr("_rels/.rels", rels)
        archive.writestr("xl/workbook.xml", workbook)
        archive.writestr("xl/_rels/workbook.xml.rels", workbook_rels)
        archive.writestr("xl/worksheets/sheet1.xml", sheet_xml)
    return path


def _sheet(dtd: str, cell: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' + dtd +
            '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
            '<row r="1"><c r="A1" t="inlineStr"><is><t>项目</t></is></c></row>'
            f'<row r="2"><c r="A2" t="inlineStr"><is><t>{cell}</t></is></c></row>'
            "</sheetData></worksheet>")  # fmt: skip


def xxe_xlsx(path: Path) -> Path:
    return _xlsx(path, _sheet('<!DOCTYPE worksheet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', "&xxe;"))


def billion_laughs_xlsx(path: Path) -> Path:
    return _xlsx(path, _sheet(_laughs().replace("w:document", "worksheet"), "&lol9;"))


BOMBS: dict[str, Callable[[Path], Path]] = {
    "nested-flate.pdf": nested_flate_pdf,
    "length-lie.pdf": length_lie_pdf,
    "outline-cycle.pdf": outline_cycle_pdf,
    "xxe.docx": xxe_docx,
    "billion-laughs.docx": billion_laughs_docx,
    "zip-bomb.docx": zip_bomb_docx,
    "lying-size.docx": lying_size_docx,
    "xxe.xlsx": xxe_xlsx,
    "billion-laughs.xlsx": billion_laughs_xlsx,
}
# Files whose only content is the attack: nothing readable is left, so they must fail. The others
# (a lying /Length, an outline cycle) carry a readable page that may be indexed once the lie is survived.
MUST_FAIL = {"nested-flate.pdf", "xxe.docx", "billion-laughs.docx", "zip-bomb.docx", "lying-size.docx",
             "xxe.xlsx", "billion-laughs.xlsx"}  # fmt: skip


def build_corpus(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {name: build(folder / name) for name, build in BOMBS.items()}
