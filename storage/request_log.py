"""The request log's writes: a row per request, then its status as the request lives."""

from __future__ import annotations

from collections.abc import Sequence

from storage.codec import dumps
from storage.database import UNFINISHED, Database
from storage.types import NewRequest


class RequestLog(Database):
    """Record requests and move them through queued -> running -> a final status."""

    async def record_request(self, req: NewRequest) -> int:
        """Log a request as it arrives (status ``queued``); returns its id."""
        return await self._insert_request(req, "queued", None)

    async def record_rejected(self, req: NewRequest, reason: str) -> int:
        """Log a request turned away before queueing, with the reason; returns its id."""
        return await self._insert_request(req, "rejected", reason)

    async def _insert_request(self, req: NewRequest, status: str, error: str | None) -> int:
        now = self._now()
        owner = self._owner.token if self._owner else None
        result = await self._execute(
            "INSERT INTO requests (source, status, prompt, params, model_name, user_id, user_name, guild_id, "
            "channel_id, interaction_id, parent_id, seed, error, created_at, finished_at, owner) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (req.source, status, req.prompt, dumps(req.params), req.model_name, req.user_id, req.user_name,
             req.guild_id, req.channel_id, req.interaction_id, req.parent_id, req.params.get("seed"), error,
             now, now if status == "rejected" else None, owner),
        )
        assert result.lastrowid is not None
        return result.lastrowid

    async def mark_running(
        self, request_id: int, *, seed: int | None = None, prompt_tokens: int | None = None
    ) -> bool:
        """queued -> running; returns False when the row was not queued."""
        result = await self._execute(
            "UPDATE requests SET status = 'running', started_at = ?, seed = coalesce(?, seed), "
            "prompt_tokens = coalesce(?, prompt_tokens) WHERE id = ? AND status = 'queued'",
            (self._now(), seed, prompt_tokens, request_id),
        )
        return result.rowcount > 0

    async def mark_done(
        self,
        request_id: int,
        *,
        outputs: Sequence[str],
        seed: int,
        prompt_tokens: int,
        completion_tokens: Sequence[int],
        queue_s: float,
        generation_s: float,
    ) -> bool:
        """Record the outputs of a finished request; returns False when it had already ended."""
        now = self._now()
        result = await self._execute(
            "UPDATE requests SET status = 'done', outputs = ?, seed = ?, prompt_tokens = ?, "
            "completion_tokens = ?, queue_s = ?, generation_s = ?, finished_at = ?, "
            f"started_at = coalesce(started_at, ?) WHERE id = ? AND {UNFINISHED}",
            (dumps(list(outputs)), seed, prompt_tokens, dumps(list(completion_tokens)), queue_s,
             generation_s, now, now, request_id),
        )
        return result.rowcount > 0

    async def mark_failed(self, request_id: int, error: str) -> bool:
        """An unfinished request failed; ``error`` says why."""
        return await self._finish(request_id, "failed", error)

    async def mark_cancelled(self, request_id: int, reason: str = "cancelled") -> bool:
        """An unfinished request was cancelled (by its author, a moderator or shutdown)."""
        return await self._finish(request_id, "cancelled", reason)

    async def mark_interrupted(self, request_id: int, reason: str) -> bool:
        """An unfinished request will never finish (shutdown, lost worker)."""
        return await self._finish(request_id, "interrupted", reason)

    async def mark_expired(self, request_id: int, reason: str) -> bool:
        """An unfinished request waited or ran past its time limit."""
        return await self._finish(request_id, "expired", reason)

    async def mark_rejected(self, request_id: int, reason: str) -> bool:
        """A recorded request the engine would not take (queue full, invalid...); ``reason`` says why."""
        return await self._finish(request_id, "rejected", reason)

    async def mark_undelivered(self, request_id: int, reason: str) -> bool:
        """A done request whose result never reached the user: 'expired', its outputs kept for review."""
        result = await self._execute(
            "UPDATE requests SET status = 'expired', error = ? WHERE id = ? AND status = 'done'",
            (reason, request_id),
        )
        return result.rowcount > 0

    async def _finish(self, request_id: int, status: str, error: str) -> bool:
        result = await self._execute(
            f"UPDATE requests SET status = ?, error = ?, finished_at = ? WHERE id = ? AND {UNFINISHED}",
            (status, error, self._now(), request_id),
        )
        return result.rowcount > 0
