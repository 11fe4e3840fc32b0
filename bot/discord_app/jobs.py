"""The Discord presenter of a request: checks, defer, stream events to Discord, finish (the log is the lifecycle's)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, field
from datetime import timedelta

import discord

from bot.discord_app import components, render
from bot.discord_app.access import AccessRules, Cooldowns, check_can_generate
from bot.discord_app.delivery import TOKEN_LIFETIME, Delivery, send_ephemeral
from bot.errors import AccessDenied, RequestRefused
from bot.filters import Filters
from bot.lifecycle import RequestLifecycle
from bot.safety.matcher import Verdict
from bot.safety.rules import Rule
from bot.safety.stream import OutputWatch
from models.engine import Engine
from models.errors import EngineClosed, EngineError, InvalidRequest, QueueFull, TooManyPending
from models.handle import RequestHandle
from models.types import (
    Cancelled, Delta, Done, Event, Failed, GenerationParams, GenerationRequest, GenerationResult, Queued, Started,
)
from storage import Store
from storage.types import NewRequest

log = logging.getLogger(__name__)

# Refuse at submit when the queue would outlast what is left of the 15-minute interaction token.
TOKEN_BUDGET_S = 12 * 60


@dataclass
class Job:
    """A request the bot is serving right now."""

    request_id: int
    user_id: int
    prompt: str
    params: GenerationParams
    handle: RequestHandle
    delivery: Delivery
    texts: list[str]
    status: str = "Queued"
    cancelled_by: str | None = None
    watch: OutputWatch | None = None  # the filter's check of the outputs; None without a filter
    guild_id: int | None = None
    reporter_id: int | None = None  # the bot's own user id: the reporter of the filter's reports
    words_shown: bool = False  # an edit already showed generated words (the first ones skip the throttle)

    def shown(self) -> list[str]:
        """The texts an edit may show: only what the filter has checked."""
        return self.watch.visible(self.texts) if self.watch is not None else self.texts


@dataclass
class JobOptions:
    """Tunables of the job manager (tests shorten them)."""

    edit_interval_s: float = 1.0
    token_lifetime: timedelta = TOKEN_LIFETIME
    token_budget_s: float = TOKEN_BUDGET_S


@dataclass
class JobManager:
    """Starts, tracks, cancels and drains the requests the bot is serving."""

    store: Store
    engine: Engine
    rules: AccessRules
    cooldowns: Cooldowns
    model_name: str
    lifecycle: RequestLifecycle
    options: JobOptions = field(default_factory=JobOptions)
    filters: Filters | None = None
    jobs: dict[int, Job] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    accepting: bool = True

    # -- starting -------------------------------------------------------------------------

    async def start(
        self, interaction: discord.Interaction, prompt: str, params: GenerationParams, *, parent_id: int | None = None
    ) -> int | None:
        """Serve one request for ``interaction``; returns its row id, or None when it was refused."""
        new = self._new_request(interaction, prompt, params, parent_id)
        try:
            await self._check(interaction)
            prompt_verdict = await self._check_prompt(interaction, prompt)
        except FilterBlocked as blocked:
            await send_ephemeral(interaction, blocked.reason)
            await self.lifecycle.reject(new, blocked.logged)
            return None
        except AccessDenied as exc:
            await send_ephemeral(interaction, exc.reason)
            await self.lifecycle.reject(new, exc.reason)
            return None
        request = GenerationRequest(prompt=prompt, params=params, user_key=str(interaction.user.id))
        try:
            # The row is written before the engine sees the request; if that write fails, the
            # error reaches the tree's handler, which answers the user, and nothing runs.
            tracked = await self.lifecycle.submit(new, request, lambda exc: _refusal_text(exc, self.engine))
        except RequestRefused as exc:
            await send_ephemeral(interaction, exc.reason)
            return None
        request_id, handle = tracked.request_id, tracked.handle
        if not await self._defer(interaction, request_id, handle):
            return None
        self.cooldowns.touch(interaction.user.id)
        delivery = Delivery(interaction, interval_s=self.options.edit_interval_s, token_lifetime=self.options.token_lifetime)
        job = Job(request_id, interaction.user.id, prompt, params, handle, delivery, [""] * params.variants,
                  guild_id=interaction.guild_id,
                  reporter_id=interaction.client.user.id if interaction.client.user else None)
        if self.filters is not None:
            job.watch = await self.filters.watch(interaction.guild_id)
            await self._report_flags(job, prompt_verdict.flags, "prompt")
        self.jobs[request_id] = job
        task = asyncio.create_task(self._drive(job), name=f"job-{request_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return request_id

    def _new_request(
        self, interaction: discord.Interaction, prompt: str, params: GenerationParams, parent_id: int | None
    ) -> NewRequest:
        return NewRequest(
            source="discord",
            prompt=prompt,
            params=asdict(params),
            model_name=self.model_name,
            user_id=interaction.user.id,
            user_name=interaction.user.display_name,
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            interaction_id=interaction.id,
            parent_id=parent_id,
        )

    async def _check(self, interaction: discord.Interaction) -> None:
        if not self.accepting:
            raise AccessDenied("I'm restarting right now. Please try again in a minute.")
        check_can_generate(self.rules, interaction)
        ban = await self.store.active_ban(interaction.user.id, interaction.guild_id)
        if ban is not None:
            until = f" until {discord.utils.format_dt(ban.until, 'f')}" if ban.until else ""
            raise AccessDenied(f"You are banned from using this bot here{until}.")
        wait = self.cooldowns.retry_after(interaction.user.id)
        if wait > 0:
            retry = discord.utils.utcnow() + timedelta(seconds=wait)
            raise AccessDenied(f"Slow down a little: you can ask again {discord.utils.format_dt(retry, 'R')}.")
        eta = self.engine.eta_for_new()
        if eta is not None and eta > self.options.token_budget_s:
            status = self.engine.status()
            raise AccessDenied(
                f"The queue is too long right now ({status.queue_length} waiting, {render.eta_text(eta)}). "
                "Please try again later."
            )

    async def _check_prompt(self, interaction: discord.Interaction, prompt: str) -> Verdict:
        """The filter's verdict on the prompt; raises FilterBlocked when a block rule matches."""
        if self.filters is None:
            return Verdict()
        verdict = await self.filters.check_prompt(interaction.guild_id, prompt)
        if verdict.block is not None:
            rule = verdict.block
            log.info("interaction %s: prompt blocked by filter %s", interaction.id, rule.key)
            raise FilterBlocked(f"I can't continue that prompt here: {rule.reason}.",
                                f"blocked by filter {rule.key}: {rule.reason}")
        return verdict

    async def _defer(self, interaction: discord.Interaction, request_id: int, handle: RequestHandle) -> bool:
        try:
            await interaction.response.defer(thinking=True)
            return True
        except discord.HTTPException as exc:
            handle.cancel()
            reason = f"Discord refused the acknowledgement ({exc.code or exc.status}: {exc.text or exc})"
            log.warning("interaction %s: could not defer: %s", interaction.id, reason)
            await self.lifecycle.end(request_id, "expired", reason)
            return False

    # -- serving -----------------------------------------------------------------------------

    async def _drive(self, job: Job) -> None:
        try:
            await self._consume(job)
        except asyncio.CancelledError:
            job.handle.cancel()
            await self.lifecycle.abandon(job.request_id, "interrupted", "the bot stopped")
            raise
        except Exception:
            log.exception("request %s: delivery failed", job.request_id)
            job.handle.cancel()
            await self.lifecycle.abandon(job.request_id, "failed", "internal error while delivering the reply")
        finally:
            self.jobs.pop(job.request_id, None)

    async def _consume(self, job: Job) -> None:
        events = job.handle.__aiter__()
        pending: asyncio.Future | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(events, None))
                # Wake for the next event, or when a throttled edit becomes due.
                done, _ = await asyncio.wait({pending}, timeout=job.delivery.wait_s())
                if not done:
                    await job.delivery.flush()
                    continue
                event, pending = pending.result(), None
                if event is None or await self._apply(job, event):
                    return
        finally:
            if pending is not None:
                pending.cancel()

    async def _apply(self, job: Job, event: Event) -> bool:
        """Log and show one engine event; True when it was the last."""
        if await self._filtered(job, event):
            return True
        status = await self.lifecycle.on_event(job.request_id, event, cancel_reason=f"cancelled by {job.cancelled_by or 'request'}")
        match event:
            case Queued(position=position, eta_s=eta_s):
                job.status = render.queued_status(position, eta_s)
                await self._show_progress(job)
            case Started():
                job.status = "Generating…"
                await self._show_progress(job)
            case Delta():
                # The first visible words go out at once; after that, edits are throttled.
                await self._show_progress(job, now=not job.words_shown and any(t.strip() for t in job.shown()))
            case Done(result=result):
                await self._finish_done(job, result)
            case Failed(reason=reason):
                await self._finish_failed(job, reason, status == "interrupted")
            case Cancelled():
                await self._finish_cancelled(job)
        return status is not None

    async def _show_progress(self, job: Job, *, now: bool = False) -> None:
        def build() -> tuple[str, discord.ui.View]:  # when the edit is sent, with the text as it is then
            job.words_shown = any(t.strip() for t in job.shown())
            status = f"#{job.request_id} · {job.status}"
            return render.progress(job.prompt, job.shown(), status), components.running_view(job.request_id)

        await job.delivery.show(build, now=now)

    async def _finish_done(self, job: Job, result: GenerationResult) -> None:
        footer = f"\n-# #{job.request_id} · seed {result.seed} · {sum(result.completion_tokens)} tokens · {result.generation_s:.1f} s"
        if result.prompt_truncated:
            footer += " · prompt too long: only its end was used"
        text = render.compose(job.prompt, result.texts) + footer
        view = components.finished_view(job.request_id, len(result.texts), can_continue=True)
        await self._deliver(job, text, view, "done")

    async def _finish_failed(self, job: Job, reason: str, restarting: bool) -> None:
        if restarting:
            note = "⚠️ I'm restarting, so this request was stopped. Please try again in a minute."
        else:
            note = f"⚠️ Generation failed: {reason}"
        text = render.compose(job.prompt, job.shown()) + f"\n-# #{job.request_id} · {note}"
        await self._deliver(job, text, components.finished_view(job.request_id, 1, can_continue=False), "failed")

    async def _finish_cancelled(self, job: Job) -> None:
        who = job.cancelled_by or "request"
        text = render.compose(job.prompt, job.shown()) + f"\n-# #{job.request_id} · Cancelled by {who}."
        await self._deliver(job, text, components.finished_view(job.request_id, 1, can_continue=False), "cancelled")

    async def _filtered(self, job: Job, event: Event) -> bool:
        """Take a Delta's text in and check new text before any edit can show it; True when a block rule withheld it."""
        if isinstance(event, Delta):
            job.texts[event.variant] += event.text
            if job.watch is None:
                return False
            verdict = job.watch.check(job.texts, event.variant)
            texts: list[str] | tuple[str, ...] = job.texts
        elif isinstance(event, Done) and job.watch is not None:
            verdict = job.watch.check_final(event.result.texts)
            texts = event.result.texts
        else:
            return False
        await self._report_flags(job, verdict.new_flags, "output")
        if verdict.block is None:
            return False
        await self._withhold(job, verdict.block, texts)
        return True

    async def _withhold(self, job: Job, rule: Rule, texts: list[str] | tuple[str, ...]) -> None:
        """Stop generating, keep the full text for moderators, open a report, and show only that it was withheld."""
        job.handle.cancel()
        log.info("request %s: output withheld by filter %s", job.request_id, rule.key)
        await self.lifecycle.withhold(job.request_id, list(texts), f"withheld by filter {rule.key}: {rule.reason}")
        await self._report(job, f"Filter {rule.key} withheld the output: {rule.reason}")
        text = (render.bold_prompt(job.prompt) + f"\n\n🛡️ Withheld by this server's filter: {rule.reason}."
                + f"\n-# #{job.request_id} · the moderators have been told")
        await self._deliver(job, text, components.finished_view(job.request_id, 1, can_continue=False), "withheld")

    async def _report_flags(self, job: Job, rules: tuple[Rule, ...], what: str) -> None:
        for rule in rules:
            log.info("request %s: %s flagged by filter %s", job.request_id, what, rule.key)
            await self._report(job, f"Filter {rule.key} flagged the {what}: {rule.reason}")

    async def _report(self, job: Job, reason: str) -> None:
        """Open a report from the bot itself, beside members' reports in /mod reports."""
        if job.reporter_id is not None:
            await self.store.add_report(job.request_id, job.reporter_id, reason, job.guild_id)

    async def _deliver(self, job: Job, text: str, view: discord.ui.View, outcome: str) -> None:
        chunks = render.split_message(text)
        note = f"<@{job.user_id}>, your request #{job.request_id} finished after its Discord interaction expired:"
        how = await job.delivery.final(chunks, view, note)
        if how == "lost":
            log.warning("request %s: could not deliver the result; marking expired", job.request_id)
            if outcome == "done":
                await self.lifecycle.undelivered(job.request_id, "interaction expired and the channel was not writable")
        elif how == "channel":
            log.info("request %s: delivered by channel message (interaction expired)", job.request_id)

    # -- controlling -------------------------------------------------------------------------

    def cancel(self, request_id: int, by: str) -> bool:
        """Cancel a queued or running request; False when it is not active."""
        job = self.jobs.get(request_id)
        if job is None:
            return False
        job.cancelled_by = by
        job.handle.cancel()
        return True

    async def drain(self, timeout_s: float) -> None:
        """Wait for every job to deliver its last message, then cancel what is left."""
        self.accepting = False
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=timeout_s)
        for task in set(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)


class FilterBlocked(AccessDenied):
    """A block rule matched the prompt: ``reason`` is for the member, ``logged`` (with the rule id) for the row."""

    def __init__(self, reason: str, logged: str) -> None:
        super().__init__(reason)
        self.logged = logged


def _refusal_text(exc: EngineError, engine: Engine) -> str:
    if isinstance(exc, InvalidRequest):
        return f"That request isn't valid: {exc.field} {exc.message}."
    if isinstance(exc, QueueFull):
        eta = render.eta_text(engine.eta_for_new())
        return (
            f"The queue is full ({exc.queue_size} requests waiting"
            + (f", {eta} of work" if eta else "")
            + "). Please try again in a little while."
        )
    if isinstance(exc, TooManyPending):
        return f"You already have {exc.limit} requests waiting. Try again when one of them has finished."
    if isinstance(exc, EngineClosed):
        return "I'm restarting right now. Please try again in a minute."
    return "The model isn't available right now. The owner has been told; please try again later."
