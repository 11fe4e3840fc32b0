"""Checks a slash command's option values against what the command declares, before discord.py parses them.

Discord's client enforces types, ranges and choices, but a stale client or a forged payload can send
anything: discord.py itself re-checks none of it (a Range or a Literal arrives as sent) and crashes on
a non-numeric number without answering. Lone surrogates in text are replaced with U+FFFD here, so the
engine, the log and the member all see the same text.
"""

from __future__ import annotations

import math
import re
from typing import Any

import discord
from discord import app_commands
from discord.enums import AppCommandOptionType as Kind

SNOWFLAKE = re.compile(r"^\d{1,20}$")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_GROUPING = (1, 2)  # sub-command, sub-command group


def replace_lone_surrogates(text: str) -> str:
    """``text`` with every lone surrogate (not a character; no UTF-8 form) replaced by U+FFFD."""
    return LONE_SURROGATE.sub("\ufffd", text)


def option_problem(tree: app_commands.CommandTree, interaction: discord.Interaction) -> str | None:
    """A sentence for the member when an option value breaks the command's declaration, else None.

    An unknown command, subcommand or option is left to discord.py, which raises CommandNotFound or
    CommandSignatureMismatch (answered by the error boundary). Fixes lone surrogates in place.
    """
    data: dict[str, Any] = dict(interaction.data or {})
    command, options = _resolve(tree, data, interaction.guild_id)
    if command is None:
        return None
    declared = {p.display_name: p for p in command.parameters}
    for option in options:
        parameter = declared.get(str(option.get("name")))
        if parameter is None or "value" not in option:
            return None
        if isinstance(option["value"], str):
            option["value"] = replace_lone_surrogates(option["value"])
        problem = _value_problem(parameter, option["value"])
        if problem is not None:
            return f"`{parameter.display_name}` {problem}."
    return None


def _resolve(
    tree: app_commands.CommandTree, data: dict[str, Any], guild_id: int | None
) -> tuple[app_commands.Command[Any, ..., Any] | None, list[dict[str, Any]]]:
    name = str(data.get("name", ""))
    guild = discord.Object(int(guild_id)) if guild_id else None
    found: Any = tree.get_command(name, guild=guild) or tree.get_command(name)
    options: list[dict[str, Any]] = list(data.get("options") or [])
    while isinstance(found, app_commands.Group):
        if not options or options[0].get("type") not in _GROUPING:
            return None, []
        found, options = found.get_command(str(options[0].get("name"))), list(options[0].get("options") or [])
    return (found if isinstance(found, app_commands.Command) else None), options


def _value_problem(parameter: app_commands.Parameter, value: Any) -> str | None:
    kind = parameter.type
    if kind is Kind.number:
        number = _as_float(value)
        if number is None:
            return "must be a number"
        return _range_problem(parameter, number)
    if kind is Kind.integer:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be a whole number"
        return _range_problem(parameter, value)
    if kind is Kind.string:
        if not isinstance(value, str):
            return "must be text"
        if parameter.choices and value not in {c.value for c in parameter.choices}:
            return "must be one of: " + ", ".join(str(c.value) for c in parameter.choices)
        return _length_problem(parameter, value)
    if kind is Kind.boolean:
        return None if isinstance(value, bool) else "must be true or false"
    if kind in (Kind.user, Kind.channel, Kind.role, Kind.mentionable, Kind.attachment):
        return None if SNOWFLAKE.match(str(value)) else "is not something Discord sent"
    return None


def _as_float(value: Any) -> float | None:
    """The number discord.py would make of ``value`` (it calls float()), if it is a finite one."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _range_problem(parameter: app_commands.Parameter, value: float) -> str | None:
    low, high = parameter.min_value, parameter.max_value
    if (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            return f"must be between {_show(low)} and {_show(high)}"
        if low is not None:
            return f"must be at least {_show(low)}"
        return f"must be at most {_show(high)}" if high is not None else None
    return None


def _show(bound: float) -> str:
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def _length_problem(parameter: app_commands.Parameter, value: str) -> str | None:
    low, high = parameter.min_value, parameter.max_value
    if (low is not None and len(value) < low) or (high is not None and len(value) > high):
        return f"must be {low or 0} to {high} characters long" if high is not None else f"needs {low}+ characters"
    return None
