"""Pure text formatting for Discord messages: progress, final results, splitting at 2000 characters."""

from __future__ import annotations

from collections.abc import Sequence

import discord

MESSAGE_LIMIT = 2000
CURSOR = " ▌"


def bold_prompt(prompt: str) -> str:
    """The prompt in bold, markdown in it escaped so it cannot break out of the bold."""
    escaped = discord.utils.escape_markdown(prompt.strip("\n"))
    return f"**{escaped}**" if escaped.strip() else ""


def variant_header(index: int, count: int) -> str:
    """A separator line naming the variant, or nothing for a single text."""
    return f"\n\n──── Variant {index + 1} of {count} ────\n" if count > 1 else ""


def compose(prompt: str, texts: Sequence[str]) -> str:
    """The whole reply: the prompt in bold, then each continuation (variants clearly separated)."""
    head = bold_prompt(prompt)
    if len(texts) == 1:
        return head + texts[0]
    return head + "".join(variant_header(i, len(texts)) + t for i, t in enumerate(texts))


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split into chunks of at most ``limit`` characters, preferring line then word boundaries.

    Nothing is dropped: joining the chunks gives back ``text`` (whitespace at a cut included).
    """
    chunks: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = window.rfind("\n")
        if cut < limit // 2:
            cut = window.rfind(" ")
        if cut < limit // 2:
            cut = limit
        else:
            cut += 1  # keep the newline or space with the earlier chunk
        chunks.append(rest[:cut])
        rest = rest[cut:]
    chunks.append(rest)
    return [c if c.strip() else "\u200b" for c in chunks]


def progress(prompt: str, texts: Sequence[str], status: str, limit: int = MESSAGE_LIMIT) -> str:
    """A streaming snapshot that fits one message: status line, then the tail of the text so far."""
    status_line = f"-# {status}\n"
    body = compose(prompt, texts) + CURSOR
    room = limit - len(status_line)
    if len(body) > room:
        body = "…" + body[-(room - 1):]
    return status_line + body


def eta_text(seconds: float | None) -> str:
    """'about 40 s' / 'about 3 min', or '' when unknown."""
    if seconds is None:
        return ""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    return f"about {round(seconds / 60)} min"


def queued_status(position: int, eta_s: float | None) -> str:
    """'Queued: #2 in line, about 12 s'."""
    eta = eta_text(eta_s)
    return f"Queued: #{position} in line" + (f", {eta}" if eta else "")
