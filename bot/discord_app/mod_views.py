"""How moderators see requests and reports: embeds and the report-resolving view."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, Sequence

import discord

from bot.discord_app.pager import Fetch, OwnedView, Pager
from storage.types import ReportRow, RequestRow, Status

Resolve = Callable[[int, discord.Interaction], Awaitable[None]]  # (report id, the click) -> None

STATUS_ICONS: dict[Status, str] = {
    "queued": "⏳", "running": "▶️", "done": "✅", "failed": "⚠️", "cancelled": "✖️",
    "interrupted": "⏹️", "expired": "⌛", "rejected": "⛔", "withheld": "🛡️",
}


def excerpt(text: str, limit: int = 90) -> str:
    """One line of ``text``, markdown escaped, cut with an ellipsis."""
    line = " ".join(text.split())
    if len(line) > limit:
        line = line[: limit - 1] + "…"
    return discord.utils.escape_markdown(line) or "(empty)"


def request_line(row: RequestRow) -> str:
    """One request as two short lines for a list."""
    icon = STATUS_ICONS.get(row.status, "")
    who = f"<@{row.user_id}>" if row.user_id else (row.user_name or row.source)
    when = discord.utils.format_dt(row.created_at, "R")
    return f"`#{row.id}` {icon} {row.status} · {who} · {when}\n> {excerpt(row.prompt)}"


def requests_embed(title: str, rows: Sequence[RequestRow]) -> discord.Embed:
    """A list of requests, or a friendly note when there are none."""
    body = "\n".join(request_line(r) for r in rows) or "Nothing found."
    return discord.Embed(title=title, description=body[:4096], colour=discord.Colour.blurple())


def request_detail(row: RequestRow) -> tuple[discord.Embed, discord.File | None]:
    """Everything about one request; the full text as an attachment when the embed cannot hold it."""
    embed = discord.Embed(title=f"Request #{row.id} · {row.status}", colour=discord.Colour.blurple())
    embed.description = f"**Prompt**\n{excerpt(row.prompt, 1500)}"
    embed.add_field(name="User", value=f"<@{row.user_id}> ({discord.utils.escape_markdown(row.user_name or '?')})" if row.user_id else row.source)
    if row.channel_id:
        embed.add_field(name="Channel", value=f"<#{row.channel_id}>")
    embed.add_field(name="When", value=discord.utils.format_dt(row.created_at, "f"))
    params = ", ".join(f"{k}={v}" for k, v in row.params.items())
    embed.add_field(name="Settings", value=f"{params}\nmodel {row.model_name}"[:1024], inline=False)
    timing = []
    if row.queue_s is not None:
        timing.append(f"waited {row.queue_s:.1f} s")
    if row.generation_s is not None:
        timing.append(f"generated in {row.generation_s:.1f} s")
    if row.completion_tokens:
        timing.append(f"{sum(row.completion_tokens)} tokens")
    if timing:
        embed.add_field(name="Timing", value=" · ".join(timing), inline=False)
    if row.error:
        embed.add_field(name="Reason", value=row.error[:1024], inline=False)
    for i, text in enumerate(row.outputs[:5]):
        name = "Output" if len(row.outputs) == 1 else f"Output {i + 1}"
        embed.add_field(name=name, value=excerpt(text, 1000), inline=False)
    full = _full_text(row)
    needs_file = len(row.prompt) > 1500 or any(len(t) > 1000 for t in row.outputs)
    file = discord.File(io.BytesIO(full.encode()), filename=f"request-{row.id}.txt") if needs_file else None
    return embed, file


def _full_text(row: RequestRow) -> str:
    parts = [f"Request #{row.id} ({row.status})", "", "PROMPT", row.prompt]
    for i, text in enumerate(row.outputs):
        parts += ["", f"OUTPUT {i + 1}", text]
    return "\n".join(parts)


def reports_embed(rows: Sequence[ReportRow]) -> discord.Embed:
    """Open reports, oldest concerns first on the page."""
    lines = [
        f"`report {r.id}` on `#{r.request_id}` by <@{r.reporter_id}> · {discord.utils.format_dt(r.created_at, 'R')}\n> {excerpt(r.reason, 150)}"
        for r in rows
    ]
    return discord.Embed(title="Open reports", description="\n".join(lines) or "No open reports. 🎉", colour=discord.Colour.orange())


class ReportsPager(Pager):
    """Open reports with a Resolve button for each one on the page."""

    def __init__(self, owner_id: int, fetch: Fetch, resolve: Resolve, *, timeout: float, page_size: int = 4) -> None:
        super().__init__(owner_id, fetch, reports_embed, again="/mod reports", timeout=timeout, page_size=page_size)
        self.resolve = resolve

    async def load(self) -> discord.Embed:
        embed = await super().load()
        for item in [i for i in self.children if getattr(i, "custom_id", "").startswith("resolve:")]:
            self.remove_item(item)
        for report in self.rows:
            self.add_item(ResolveButton(self, report.id))
        return embed


class ResolveButton(discord.ui.Button[ReportsPager]):
    """Resolves one report, then shows the page again without it."""

    def __init__(self, pager: ReportsPager, report_id: int) -> None:
        super().__init__(
            label=f"Resolve {report_id}", style=discord.ButtonStyle.success, custom_id=f"resolve:{report_id}", row=1
        )
        self.pager = pager
        self.report_id = report_id

    async def callback(self, interaction: discord.Interaction) -> None:
        await self.pager.resolve(self.report_id, interaction)
        await self.pager.show_page(interaction)


class OwnedConfirm(OwnedView):
    """A two-button confirmation; ``confirmed`` is True, False, or None on timeout."""

    def __init__(self, owner_id: int, confirm_label: str, *, timeout: float, expired_text: str) -> None:
        super().__init__(owner_id, timeout=timeout, expired_text=expired_text)
        self.confirmed: bool | None = None
        self.interaction: discord.Interaction | None = None
        self.confirm.label = confirm_label

    @discord.ui.button(label="Confirm", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.confirmed, self.interaction = True, interaction
        self.stop()

    @discord.ui.button(label="Keep everything", style=discord.ButtonStyle.secondary)
    async def keep(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.confirmed, self.interaction = False, interaction
        self.stop()
