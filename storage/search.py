"""Literal full-text search: the user's text becomes one FTS5 phrase, and a row must contain it verbatim."""

from __future__ import annotations

import json
import re

# Characters the unicode61 tokenizer keeps in tokens (letters and digits); all else separates them.
_WORD = re.compile(r"[^\W_]")


def fts_phrase(text: str) -> str | None:
    """``text`` as a single quoted FTS5 phrase, or None when it has no word to index.

    Inside double quotes FTS5 treats AND, OR, NOT, NEAR, ``*``, ``^``, ``:`` and parentheses as
    plain text; doubling ``"`` is the only escape. The query is bound as a parameter, so SQL is
    never built from it either.
    """
    if not _WORD.search(text):
        return None
    return '"' + text.replace('"', '""') + '"'


def contains_literally(needle: str, prompt: str, outputs_json: str) -> bool:
    """Whether ``needle`` occurs (case-insensitively) in the prompt or in one output.

    The phrase query finds candidates by words only; this keeps just the rows that hold the exact
    characters, punctuation included, so ``'%'`` or ``' OR 1=1--`` find only themselves.
    """
    folded = needle.casefold()
    if folded in prompt.casefold():
        return True
    return any(folded in output.casefold() for output in json.loads(outputs_json))
