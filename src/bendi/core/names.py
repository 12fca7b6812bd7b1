"""Names people give things: check a display name in any script, and derive a safe ASCII identifier."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Collection

from bendi.core.errors import InvalidNameError
from bendi.core.paths import MAX_NAME_CHARS, safe_component

HASH_CHARS = 6
MAX_SLUG_CHARS = 40
# Invisible characters outside the C* categories: Hangul fillers, the combining grapheme joiner,
# Khmer inherent vowels, Mongolian and other variation selectors, the blank Braille pattern. Each
# lets two names that look the same differ, so none may be part of a name.
_INVISIBLE = frozenset(
    [0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x2800, 0x3164, 0xFFA0]
    + list(range(0x180B, 0x1810))
    + list(range(0xFE00, 0xFE10))
    + list(range(0xE0100, 0xE01F0))
)
# Scripts whose letters pass for one another ("pаypal" with a Cyrillic а); CJK beside Latin is fine.
_LOOKALIKE_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC")
# Greek letters that are units after NFKC (µ MICRO SIGN -> μ, Ω OHM SIGN -> Ω), as in "5μm" or "10kΩ":
# neither passes for a Latin letter.
_UNIT_LETTERS = frozenset("μΩ")
_ASCII_RUN = re.compile(r"[A-Za-z0-9]+")


def normalize(raw: str) -> str:
    """NFKC, outer whitespace stripped, inner whitespace runs as one space; nothing is refused here."""
    return " ".join(unicodedata.normalize("NFKC", raw).split())


def name_key(raw: str) -> str:
    """What two names must share to count as the same name: normalized and case-folded."""
    return unicodedata.normalize("NFKC", normalize(raw).casefold())


def display_name(raw: str, *, what: str, max_chars: int = 100) -> str:
    """The name as a person gave it, normalized (NFKC, whitespace), or InvalidNameError saying why not.

    Refused: empty, longer than `max_chars`, control/format/invisible characters (bidi overrides,
    zero-width spaces and joiners), and a word mixing Latin, Greek or Cyrillic letters (look-alikes).
    """
    if not isinstance(raw, str):
        raise InvalidNameError(f"The {what} must be text.")
    if len(raw) > 10 * max_chars:  # refuse a huge input before normalizing it
        raise InvalidNameError(f"The {what} is {len(raw)} characters long; the limit is {max_chars}.")
    name = normalize(raw)
    if not name:
        raise InvalidNameError(f"The {what} is empty. Give it a name.")
    for ch in name:
        if unicodedata.category(ch)[0] == "C" or ord(ch) in _INVISIBLE:
            label = unicodedata.name(ch, "a control character")
            raise InvalidNameError(
                f"The {what} {name!r} contains an invisible or control character (U+{ord(ch):04X} {label}), "
                "which can make two different names look the same. Type the name again without it."
            )
    if len(name) > max_chars:
        raise InvalidNameError(
            f"The {what} is {len(name)} characters long; the limit is {max_chars}. Shorten it."
        )
    for word in name.split(" "):
        scripts = sorted({s for s in map(_lookalike_script, word) if s})
        if len(scripts) > 1:
            raise InvalidNameError(
                f"The {what} {name!r} mixes {' and '.join(s.title() for s in scripts)} letters in the word "
                f"{word!r}, which is how look-alike names are made. Write each word in one script."
            )
    if unicodedata.normalize("NFKC", name) != name:  # stripping or joining never breaks NFKC; stay sure
        raise InvalidNameError(f"The {what} {name!r} does not normalize stably; type it again.")
    return name


def _lookalike_script(ch: str) -> str | None:
    if not ch.isalpha() or ch in _UNIT_LETTERS:
        return None
    script = unicodedata.name(ch, "").split(" ", 1)[0]
    return script if script in _LOOKALIKE_SCRIPTS else None


def ascii_identifier(display: str, *, taken: Collection[str], prefix: str) -> str:
    """A safe path/URL component for a display name, unique among `taken` (compared case-insensitively).

    A display name that is already a safe component is its own identifier; any other gets a slug of its
    ASCII letters and digits, `prefix` and a hash of the name, e.g. "2025年通风科" -> "2025-kb-5f3a9c".
    """
    safe_component(prefix, what="identifier prefix")  # a programming error, not a user's
    name = normalize(display)
    try:
        base = safe_component(name, what="identifier")
    except InvalidNameError:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]
        slug = "-".join(run.lower() for run in _ASCII_RUN.findall(name))[:MAX_SLUG_CHARS].strip("-")
        base = "-".join(part for part in (slug, prefix, digest) if part)
    used = {t.casefold() for t in taken}
    candidate, n = base, 1
    while candidate.casefold() in used:
        n += 1
        candidate = f"{base[: MAX_NAME_CHARS - len(str(n)) - 1]}-{n}"
    return safe_component(candidate, what="identifier")
