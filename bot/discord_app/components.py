"""The buttons under replies: custom ids that survive restarts, and the views that carry them."""

from __future__ import annotations

import re
from dataclasses import dataclass

import discord

PREFIX = "cb"
# Request ids are SQLite integers (at most 19 digits); a longer or larger id is not one we sent.
_ACTION = re.compile(r"^cb:(cancel|regen|cont|report|reportform):(\d{1,19})(?::(\d{1,2}))?$")
MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class ButtonAction:
    """A parsed custom id: what to do with which request (and which variant, for Continue)."""

    action: str
    request_id: int
    variant: int = 0


def is_ours(custom_id: str) -> bool:
    """True for custom ids in this bot's namespace, well formed or not."""
    return custom_id.startswith(f"{PREFIX}:")


def parse_custom_id(custom_id: str) -> ButtonAction | None:
    """The action a custom id names, or None when it is not one this bot could have sent."""
    match = _ACTION.match(custom_id)
    if match is None:
        return None
    action, request_id, variant = match.groups()
    if int(request_id) > MAX_ID:
        return None
    return ButtonAction(action, int(request_id), int(variant or 0))


def _stopped(view: discord.ui.View) -> discord.ui.View:
    # A stopped view is sent as plain components and not kept in discord.py's view store:
    # clicks reach the bot's on_interaction router instead, which also works after a restart.
    view.stop()
    return view


def running_view(request_id: int) -> discord.ui.View:
    """Cancel, while queued or running."""
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(label="Cancel", style=discord.ButtonStyle.danger, custom_id=f"cb:cancel:{request_id}"))
    return _stopped(view)


def finished_view(request_id: int, variants: int, *, can_continue: bool) -> discord.ui.View:
    """Regenerate, Continue (one per variant) and Report."""
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(label="Regenerate", emoji="🔁", custom_id=f"cb:regen:{request_id}"))
    if can_continue:
        for variant in range(variants):
            label = "Continue" if variants == 1 else f"Continue {variant + 1}"
            view.add_item(discord.ui.Button(label=label, emoji="➡️", custom_id=f"cb:cont:{request_id}:{variant}"))
    view.add_item(discord.ui.Button(label="Report", emoji="🚩", style=discord.ButtonStyle.secondary, custom_id=f"cb:report:{request_id}", row=1))
    return _stopped(view)


def report_modal(request_id: int) -> discord.ui.Modal:
    """Asks the reporter why; its submit comes back through the router as ``cb:reportform:<id>``."""
    modal = discord.ui.Modal(title=f"Report request #{request_id}", custom_id=f"cb:reportform:{request_id}", timeout=None)
    modal.add_item(
        discord.ui.TextInput(
            label="What is wrong with this output?",
            style=discord.TextStyle.paragraph,
            custom_id="reason",
            min_length=3,
            max_length=500,
        )
    )
    modal.stop()
    return modal
