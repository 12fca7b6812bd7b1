"""Answer-quality metrics that need no model: character F1, ROUGE-L and key-point coverage.

Chinese has no spaces between words and a word segmenter would add a dependency and its own
errors, so CJK text is compared character by character (the usual practice for Chinese QA,
e.g. CMRC / DuReader). Latin text is compared word by word, so "safety" is one token and not
six. Punctuation and whitespace never count: "。" against "." must not change a score.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

# A CJK ideograph (and kana/hangul) is a token on its own; a run of letters/digits is one token.
_TOKEN = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]"  # one CJK character
    r"|[^\W_]+",  # one Latin/Cyrillic/... word or number
    re.UNICODE,
)


def normalize(text: str) -> str:
    """Fold full-width forms to ASCII (NFKC) and lower-case, so "ＡＢ１" equals "ab1"."""
    return unicodedata.normalize("NFKC", text or "").lower()


def tokens(text: str) -> list[str]:
    """Split into comparison units: single CJK characters and whole Latin words; drop punctuation."""
    return _TOKEN.findall(normalize(text))


def _f1_from_counts(pred: list[str], ref: list[str]) -> float:
    if not pred and not ref:
        # Two empty answers agree (e.g. both refused to say anything); scoring 0 would punish it.
        return 1.0
    if not pred or not ref:
        return 0.0
    overlap = sum((Counter(pred) & Counter(ref)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred)
    recall = overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def char_f1(prediction: str, reference: str) -> float:
    """Bag-of-tokens F1 between an answer and a reference (characters for CJK, words for Latin)."""
    return _f1_from_counts(tokens(prediction), tokens(reference))


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    # Two-row dynamic programme: O(len(a)*len(b)) time, O(len(b)) memory; answers are short.
    if not a or not b:
        return 0
    previous = [0] * (len(b) + 1)
    for item in a:
        current = [0]
        for j, other in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if item == other else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (beta=1) on the same tokens as char_f1: rewards keeping the reference's order."""
    pred, ref = tokens(prediction), tokens(reference)
    if not pred and not ref:
        return 1.0
    lcs = _lcs_length(pred, ref)
    if lcs == 0:
        return 0.0
    precision = lcs / len(pred)
    recall = lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def key_point_hit(prediction: str, key_point: str, threshold: float = 0.8) -> bool:
    """A key point counts as covered when most of its tokens appear in order in the answer.

    Exact substring matching is too strict for generated text ("不得少于2人" vs "不少于 2 人"),
    so the LCS of the key point against the answer must reach `threshold` of the key point.
    """
    point = tokens(key_point)
    if not point:
        return True
    return _lcs_length(point, tokens(prediction)) / len(point) >= threshold


def key_point_coverage(prediction: str, key_points: Sequence[str]) -> float | None:
    """Share of key points the answer covers; None when the question has no key points."""
    if not key_points:
        return None
    return sum(key_point_hit(prediction, point) for point in key_points) / len(key_points)


def mean(values: Sequence[float | None]) -> float | None:
    """Average of the values that exist; None when none do (a metric that did not apply)."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None
