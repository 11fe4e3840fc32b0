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
_CUT = regex.compile(r"(?r)(?<![\p{L}\p{N}])[\p{L}\p{N}]{2}")
_BOUNDARY = regex.compile(r"(?r)[^\p{L}\p{N}\p{M}\p{Cf}]")


def fold(text: str) -> str:
    """Case-folded, compatibility-decomposed text without accents or invisible characters."""
    return _INVISIBLE.sub("", unicodedata.normalize("NFKD", text.casefold()))


def join_spaced(folded: str) -> str:
    """Spaced-out letters of folded text joined into one word: "b a d" -> "bad"."""
    return _SPACED_OUT.sub(lambda m: _SEPARATORS.sub("", m.group()), folded)


def spaced_runs(folded: str) -> list[str]:
    """The spaced-out runs of folded text, each joined: where its word breaks are is unknown ("a b a d" is
    "a bad" or "abad"), so a rule's words anywhere inside one count as a match."""
    return [_SEPARATORS.sub("", m.group()) for m in _SPACED_OUT.finditer(folded)]


def normalize(text: str) -> str:
    """``fold`` with spaced-out letters joined into one word; what every rule is matched against."""
    return join_spaced(fold(text))


def last_cut(folded: str, start: int) -> int:
    """The last place at or after ``start`` where folded text may be split and each part normalised alone.

    That is the start of a word of two or more letters: a spaced-out run never includes such a word,
    so nothing before it can join with anything after it. Returns ``start`` when there is none.
    """
    found = _CUT.search(folded, start)
    return found.start() if found else start


def visible_end(text: str) -> int:
    """The length of ``text`` up to its last word boundary (a space or punctuation): words are shown whole."""
    found = _BOUNDARY.search(text)
    return found.end() if found else 0


def words(normalized: str) -> list[str]:
    """The words of normalised text: runs of letters and digits (underscores and punctuation split them)."""
    return _WORD.findall(normalized)
