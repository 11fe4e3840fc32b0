"""Unicode normalisation that makes accents, full-width letters, zero-width characters and spaced-out letters match."""

from __future__ import annotations

import unicodedata

import regex

# Combining marks (accents, variation selectors) and format characters (zero-width space/joiner, soft hyphen, BOM).
_INVISIBLE = regex.compile(r"[\p{Mn}\p{Me}\p{Cf}]+")
# Three or more single letters or digits split by up to three separators: "b a d", "b.a.d", "b - a - d".
_SPACED_OUT = regex.compile(r"(?<![\p{L}\p{N}])[\p{L}\p{N}](?:[^\p{L}\p{N}\n]{1,3}[\p{L}\p{N}](?![\p{L}\p{N}])){2,}")
_SEPARATORS = regex.compile(r"[^\p{L}\p{N}]+")
_WORD = regex.compile(r"[\p{L}\p{N}]+")


def fold(text: str) -> str:
    """Case-folded, compatibility-decomposed text without accents or invisible characters."""
    return _INVISIBLE.sub("", unicodedata.normalize("NFKD", text.casefold()))


def normalize(text: str) -> str:
    """``fold`` with spaced-out letters joined into one word; what every rule is matched against."""
    return _SPACED_OUT.sub(lambda m: _SEPARATORS.sub("", m.group()), fold(text))


def words(normalized: str) -> list[str]:
    """The words of normalised text: runs of letters and digits (underscores and punctuation split them)."""
    return _WORD.findall(normalized)
