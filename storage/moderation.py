"""Reports from members, bans, and the audit of what moderators and the owner did."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from storage.codec import audit_row, ban_row, dumps, report_row, to_text
from storage.database import Database, before_cursor
from storage.errors import NotFound
from storage.types import AuditRow, BanRow, ReportRow


REPORT_COLUMNS = "id, request_id, guild_id, reporter_id, reason, created_at, resolved_by, resolved_at, resolution"


class Moderation(Database):
    """Reports, bans and the audit log."""

    async def add_report(self, request_id: int, reporter_id: int, reason: str, guild_id: int | None = None) -> int:
        """A member flags a request's output; returns the report id. NotFound if no such request."""
        result = await self._execute(
            "INSERT INTO reports (request_id, guild_id, reporter_id, reason, created_at) "
            "SELECT id, coalesce(?, guild_id), ?, ?, ? FROM requests WHERE id = ?",
            (guild_id, reporter_id, reason, self._now(), request_id),
        )
        if result.rowcount == 0 or result.lastrowid is None:
            raise NotFound(f"no request #{request_id}")
        return result.lastrowid

    async def open_reports(
        self, guild_id: int | None = None, *, before_id: int | None = None, limit: int = 20
    ) -> list[ReportRow]:
        """Unresolved reports, newest first (all guilds when ``guild_id`` is None)."""
        rows = await self._fetchall(
            f"SELECT {REPORT_COLUMNS} FROM reports WHERE resolved_at IS NULL "
            "AND (? IS NULL OR guild_id = ?) AND id < ? ORDER BY id DESC LIMIT ?",
            (guild_id, guild_id, before_cursor(before_id), limit),
        )
        return [report_row(row) for row in rows]

    async def resolve_report(self, report_id: int, moderator_id: int, resolution: str = "resolved") -> bool:
        """Close an open report; False when it was already closed or does not exist."""
        result = await self._execute(
            "UPDATE reports SET resolved_by = ?, resolved_at = ?, resolution = ? "
            "WHERE id = ? AND resolved_at IS NULL",
            (moderator_id, self._now(), resolution, report_id),
        )
        return result.rowcount > 0

    async def ban(
        self, user_id: int, guild_id: int | None, *, by: int | None, reason: str | None,
        until: datetime | None = None,
    ) -> None:
        """Bar a user in a guild (``guild_id`` None: everywhere), replacing any ban there."""
        await self._execute(
            "INSERT OR REPLACE INTO bans (user_id, guild_id, banned_by, reason, since, until) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (user_id, guild_id, by, reason, self._now(), to_text(until) if until else None),
        )

    async def unban(self, user_id: int, guild_id: int | None) -> bool:
        """Lift the ban in exactly that guild (or the global one); False when there was none."""
        result = await self._execute("DELETE FROM bans WHERE user_id = ? AND guild_id IS ?", (user_id, guild_id))
        return result.rowcount > 0

    async def active_ban(self, user_id: int, guild_id: int | None) -> BanRow | None:
        """The ban that applies to the user here now: a global one first, else the guild's."""
        row = await self._fetchone(
            "SELECT user_id, guild_id, banned_by, reason, since, until FROM bans "
            "WHERE user_id = ? AND (guild_id IS NULL OR guild_id IS ?) AND (until IS NULL OR until > ?) "
            "ORDER BY guild_id IS NULL DESC LIMIT 1",
            (user_id, guild_id, self._now()),
        )
        return ban_row(row) if row else None

    async def audit(
        self, actor_id: int | None, action: str, *, target: str | None = None, detail: dict[str, Any] | None = None,
        guild_id: int | None = None,
    ) -> None:
        """Record a moderator or owner action (viewed, exported, deleted...)."""
        await self._execute(
            "INSERT INTO audit (actor_id, action, target, detail, guild_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (actor_id, action, target, dumps(detail or {}), guild_id, self._now()),
        )

    async def audit_log(self, *, guild_id: int | None = None, limit: int = 50) -> list[AuditRow]:
        """The newest audit entries (all guilds when ``guild_id`` is None)."""
        rows = await self._fetchall(
            "SELECT id, actor_id, action, target, detail, guild_id, created_at FROM audit "
            "WHERE (? IS NULL OR guild_id = ?) ORDER BY id DESC LIMIT ?",
            (guild_id, guild_id, limit),
        )
        return [audit_row(row) for row in rows]
