"""Incremental detokenization that never splits a multi-byte character."""

from __future__ import annotations

from typing import Any

REPLACEMENT = "\ufffd"
# Tokens of context decoded before the new ones, so tokenizers that drop a leading
# space when decoding a word alone (SentencePiece) still produce the right spacing.
CONTEXT_TOKENS = 5


class IncrementalDecoder:
    """Turns one row's generated tokens into text deltas (vLLM/TGI prefix-offset method).

    Text ending in U+FFFD is an incomplete UTF-8 sequence: it is held back until the
    character completes, so no delta ever carries half a character.
    """

    def __init__(self, tokenizer: Any, prompt_ids: list[int]) -> None:
        self._tokenizer = tokenizer
        self._ids = list(prompt_ids[-CONTEXT_TOKENS:])
        self._prefix = 0
        self._read = len(self._ids)

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(
            ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )

    def push(self, token_id: int) -> str:
        """Add one generated token; return the text it completes ("" while a character is partial)."""
        self._ids.append(token_id)
        return self._emit(final=False)

    def flush(self) -> str:
        """Return whatever is held back (the generation ended mid-character)."""
        return self._emit(final=True)

    def _emit(self, final: bool) -> str:
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) <= len(before) or (after.endswith(REPLACEMENT) and not final):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return after[len(before) :]
