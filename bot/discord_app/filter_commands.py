"""/mod filter add|remove|list|test: a server's own filter rules. Checked and audited on every use, like all of /mod."""

from __future__ import annotations

import logging
from typing import Any, Literal

import discord
from discord import app_commands

from bot.discord_app.access import AccessRules, check_moderator
from bot.discord_app.delivery import send_ephemeral
from bot.discord_app.mod_views import excerpt
from bot.errors import AccessDenied
from bot.filters import Filters
from bot.safety.errors import RuleRefused
from bot.safety.matcher import RuleSet
from bot.safety.rules import Rule
from storage import Store

log = logging.getLogger(__name__)

LIST_LIMIT = 3900


def rule_line(rule: Rule) -> str:
    """One rule for a moderator: its id, what it does, its pattern in code and its public reason."""
    pattern = rule.pattern.replace("`", "ˋ")
    return f"`{rule.key}` {rule.action} {rule.applies_to} {rule.kind}: ``{pattern}`` — {excerpt(rule.reason, 80)}"


class FilterGroup(app_commands.Group):
    """/mod filter: every subcommand re-checks the moderator rule (a nested group is checked on its own)."""

    def __init__(self, filters: Filters, store: Store, rules: AccessRules) -> None:
        super().__init__(name="filter", description="This server's filter on prompts and generated text")
        self.filters = filters
        self.store = store
        self.rules = rules

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        try:
            check_moderator(self.rules, interaction)
        except AccessDenied as exc:
            raise app_commands.CheckFailure(exc.reason) from None
        return True

    async def _audit(self, interaction: discord.Interaction, what: str, target: str | None = None, **detail: Any) -> None:
        await self.store.audit(interaction.user.id, what, target=target, detail=detail, guild_id=interaction.guild_id)

    @app_commands.command(name="add", description="Add a rule: matching prompts are refused, matching outputs withheld or flagged")
    @app_commands.describe(
        pattern="Words or a phrase (whole words; accents, case and spacing tricks don't matter), or a regex",
        kind="word: words or a phrase (default); regex: a regular expression",
        applies_to="Check prompts, outputs, or both (default)",
        action="block: refuse the prompt / withhold the output (default); flag: let it through and open a report",
        reason="Shown to members instead of the rule itself, e.g. 'no slurs' (default: a general sentence)",
    )
    async def add(
        self,
        interaction: discord.Interaction,
        pattern: app_commands.Range[str, 1, 200],
        kind: Literal["word", "regex"] = "word",
        applies_to: Literal["prompt", "output", "both"] = "both",
        action: Literal["block", "flag"] = "block",
        reason: app_commands.Range[str, 1, 200] | None = None,
    ) -> None:
        assert interaction.guild_id is not None  # check_moderator refuses DMs
        try:
            rule = await self.filters.add(interaction.guild_id, kind=kind, pattern=pattern, applies_to=applies_to,
                                          action=action, reason=reason, created_by=interaction.user.id)
        except RuleRefused as exc:
            await self._audit(interaction, "mod.filter.add", kind=kind, pattern=pattern, refused=exc.reason)
            await send_ephemeral(interaction, f"Rule not added: {exc.reason}.")
            return
        await self._audit(interaction, "mod.filter.add", target=f"filter_rule:{rule.key.split()[-1]}", kind=kind,
                          pattern=pattern, applies_to=applies_to, action=action, reason=rule.reason)
        await send_ephemeral(interaction, f"Added {rule_line(rule)}")

    @app_commands.command(name="remove", description="Remove one of this server's rules")
    @app_commands.describe(id="The rule number, as /mod filter list shows it")
    async def remove(self, interaction: discord.Interaction, id: app_commands.Range[int, 1]) -> None:
        assert interaction.guild_id is not None
        rule = await self.filters.remove(interaction.guild_id, id)
        await self._audit(interaction, "mod.filter.remove", target=f"filter_rule:{id}", removed=rule is not None,
                          pattern=rule.pattern if rule else None)
        text = f"Removed {rule_line(rule)}" if rule else f"This server has no filter rule {id}."
        await send_ephemeral(interaction, text)

    @app_commands.command(name="list", description="This server's rules, and the owner's rules for every server")
    async def list_(self, interaction: discord.Interaction) -> None:
        await self._audit(interaction, "mod.filter.list")
        own = await self.filters.guild_rules(interaction.guild_id)
        lines = [rule_line(r) for r in own] or ["No rules of this server yet: add one with `/mod filter add`."]
        if self.filters.file_rules:
            lines += ["", "**The owner's rules (every server):**", *(rule_line(r) for r in self.filters.file_rules)]
        body = ""
        for i, line in enumerate(lines):
            if len(body) + len(line) > LIST_LIMIT:
                body += f"… and {len(lines) - i} more lines."
                break
            body += line + "\n"
        embed = discord.Embed(title="Filter rules", description=body, colour=discord.Colour.dark_red())
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="test", description="Which rules some text would match, as a prompt and as an output")
    @app_commands.describe(text="The text to try (nothing is generated or logged)")
    async def test(self, interaction: discord.Interaction, text: app_commands.Range[str, 1, 2000]) -> None:
        rules = [*self.filters.file_rules, *(await self.filters.guild_rules(interaction.guild_id))]
        found = []
        for target in ("prompt", "output"):
            verdict = RuleSet(rules, target).check(text)
            matched = ([verdict.block] if verdict.block else []) + list(verdict.flags)
            found += [f"as {'a' if target == 'prompt' else 'an'} {target}: {rule_line(r)}" for r in matched]
        await self._audit(interaction, "mod.filter.test", text=text, matched=len(found))
        await send_ephemeral(interaction, "\n".join(found) if found else "No rule matches this text.")
