"""Filter rules per guild, and the 'withheld' end of a request stopped by one; mixed into Store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from storage.codec import dumps, from_text
from storage.database import Database
from storage.types import FilterRuleRow

RULE_COLUMNS = "id, guild_id, kind, pattern, applies_to, action, reason, created_by, created_at"
UNFINISHED = "status IN ('queued', 'running')"


class FilterQueries(Database):
    """Store methods for filter rules; uses the Store's one writer and read connection."""

    async def add_filter_rule(
        self, guild_id: int, *, kind: str, pattern: str, applies_to: str, action: str, reason: str,
        created_by: int | None,
    ) -> int:
        """Save a rule (already checked by the app); returns its id."""
        result = await self._execute(
            "INSERT INTO filter_rules (guild_id, kind, pattern, applies_to, action, reason, created_by, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (guild_id, kind, pattern, applies_to, action, reason, created_by, self._now()),
        )
        assert result.lastrowid is not None
        return result.lastrowid

    async def remove_filter_rule(self, guild_id: int, rule_id: int) -> FilterRuleRow | None:
        """Delete a guild's rule; returns it, or None when that guild has no such rule."""
        rows = await self._fetchall(f"SELECT {RULE_COLUMNS} FROM filter_rules WHERE id = ? AND guild_id = ?",
                                    (rule_id, guild_id))
        if not rows:
            return None
        result = await self._execute("DELETE FROM filter_rules WHERE id = ? AND guild_id = ?", (rule_id, guild_id))
        return filter_rule_row(rows[0]) if result.rowcount else None

    async def filter_rules(self, guild_id: int) -> list[FilterRuleRow]:
        """A guild's rules, oldest first."""
        rows = await self._fetchall(f"SELECT {RULE_COLUMNS} FROM filter_rules WHERE guild_id = ? ORDER BY id",
                                    (guild_id,))
        return [filter_rule_row(row) for row in rows]

    async def mark_withheld(self, request_id: int, *, outputs: Sequence[str], reason: str) -> bool:
        """An unfinished request stopped by a filter rule: 'withheld', with the full text kept for moderators."""
        result = await self._execute(
            "UPDATE requests SET status = 'withheld', outputs = ?, error = ?, finished_at = ? "
            f"WHERE id = ? AND {UNFINISHED}",
            (dumps(list(outputs)), reason, self._now(), request_id),
        )
        return result.rowcount > 0


def filter_rule_row(row: Sequence[Any]) -> FilterRuleRow:
    """A FilterRuleRow from ``SELECT {RULE_COLUMNS}``."""
    id_, guild_id, kind, pattern, applies_to, action, reason, created_by, created_at = row
    created: datetime | None = from_text(created_at)
    assert created is not None
    return FilterRuleRow(id_, guild_id, kind, pattern, applies_to, action, reason, created_by, created)
