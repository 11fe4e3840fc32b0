"""``continuebot logs``: the owner's terminal view of the request log (review, search, export, prune)."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bot.config import Settings
from storage import RequestFilter, RequestRow, StorageError, Store
from storage.export import record
from storage.types import STATUSES

class BadInput(Exception):
    """Input the command cannot use; the message is the one line shown."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``logs`` and its actions."""
    parser = subparsers.add_parser("logs", help="review, search, export and prune the request log",
                                   description="Review, search, export and prune the request log.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, helptext, setup in (
        ("recent", "newest requests first", _paged),
        ("show", "one request in full", _show_args),
        ("search", "requests whose prompt or output contains TEXT (literally)", _search_args),
        ("export", "write requests as CSV or JSONL", _export_args),
        ("stats", "totals, latency and per-user-per-day counts", _filters),
        ("reports", "the open reports queue", _reports_args),
        ("purge", "delete finished requests older than N days", _purge_args),
        ("forget", "delete everything stored about one user", _forget_args),
        ("backup", "copy the live database to a file (SQLite online backup)", _backup_args),
    ):
        sub = actions.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:] + ".")
        setup(sub)
    parser.set_defaults(run=run)


# ---- argument types and sets ---------------------------------------------------------------------


def snowflake(text: str) -> int:
    """A Discord id or row id: a positive whole number."""
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"not an id: {text!r} (expected a positive whole number)")
    return int(text)


def moment(text: str) -> datetime:
    """YYYY-MM-DD, an ISO 8601 time (UTC unless it says otherwise) or a relative ``7d``/``12h`` ago."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if text[:-1].isdigit() and text[-1:] in units:
        return datetime.now(timezone.utc) - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date: {text!r} (use YYYY-MM-DD, 2025-01-31T18:00 or 7d / 12h ago)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 up, got {text!r}")
    return int(text)


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--guild", type=snowflake, help="only this server (id)")
    parser.add_argument("--channel", type=snowflake, help="only this channel (id)")
    parser.add_argument("--user", type=snowflake, help="only this user (id)")
    parser.add_argument("--status", choices=STATUSES, help="only requests with this outcome")
    parser.add_argument("--source", choices=("discord", "cli"), help="only from Discord or the terminal")
    parser.add_argument("--since", type=moment, help="created at or after (YYYY-MM-DD, ISO time, or 7d)")
    parser.add_argument("--until", type=moment, help="created before (same forms)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _paged(parser: argparse.ArgumentParser) -> None:
    _filters(parser)
    parser.add_argument("--limit", type=positive, default=20, help="rows to show (default 20)")
    parser.add_argument("--before", type=snowflake, help="only ids below this one (the next page)")


def _show_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=snowflake, help="request id")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _search_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", help="text to find, matched literally (quotes and symbols included)")
    _paged(parser)


def _export_args(parser: argparse.ArgumentParser) -> None:
    _filters(parser)
    parser.add_argument("--format", choices=("csv", "jsonl"), default="jsonl")
    parser.add_argument("--output", "-o", type=Path, help="file to write (default: standard output)")


def _reports_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--guild", type=snowflake, help="only this server (id)")
    parser.add_argument("--limit", type=positive, default=20)
    parser.add_argument("--before", type=snowflake)
    parser.add_argument("--json", action="store_true")


def _purge_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=positive, help="older than this many days (default: LOG_RETENTION_DAYS)")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")


def _forget_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("user", type=snowflake, help="the user's Discord id")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")


def _backup_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dest", type=Path, nargs="?",
        help="the backup file to write (default: <database>-backup-YYYYmmdd-HHMMSS.db next to the database)",
    )
    parser.add_argument("--force", action="store_true", help="replace the file if it exists")


def filters_of(args: argparse.Namespace) -> RequestFilter:
    """The RequestFilter the flags describe."""
    return RequestFilter(
        guild_id=args.guild, channel_id=getattr(args, "channel", None), user_id=getattr(args, "user", None),
        status=getattr(args, "status", None), since=getattr(args, "since", None),
        until=getattr(args, "until", None), source=getattr(args, "source", None),
    )


# ---- running ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Dispatch the action; bad input and storage problems are one line on stderr and exit code 2."""
    actions: dict[str, Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]] = {
        "recent": do_recent, "show": do_show, "search": do_search, "export": do_export, "stats": do_stats,
        "reports": do_reports, "purge": do_purge, "forget": do_forget, "backup": do_backup,
    }
    try:
        return asyncio.run(actions[args.action](args, settings))
    except (BadInput, StorageError, OSError) as exc:
        print(f"continuebot logs {args.action}: {exc}", file=sys.stderr)
        return 2


def reader(settings: Settings) -> Store:
    return Store(settings.database_path, read_only=True)


def writer(settings: Settings) -> Store:
    return Store(settings.database_path, retention_days=settings.log_retention_days)


def confirm(question: str, assume_yes: bool) -> bool:
    if assume_yes:
        return True
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


async def do_recent(args: argparse.Namespace, settings: Settings) -> int:
    async with reader(settings) as store:
        rows = await store.recent(filters_of(args), before_id=args.before, limit=args.limit)
    emit_rows(rows, args.json, more=len(rows) == args.limit)
    return 0


async def do_search(args: argparse.Namespace, settings: Settings) -> int:
    if not args.text.strip():
        raise BadInput("give some text to search for")
    async with reader(settings) as store:
        rows = await store.search(args.text, filters_of(args), before_id=args.before, limit=args.limit)
    emit_rows(rows, args.json, more=len(rows) == args.limit)
    return 0


async def do_show(args: argparse.Namespace, settings: Settings) -> int:
    async with reader(settings) as store:
        row = await store.get(args.id)
    if row is None:
        raise BadInput(f"no request #{args.id}")
    if args.json:
        print(json.dumps(record(row), ensure_ascii=False, indent=2))
        return 0
    for name, value in record(row).items():
        if name not in ("prompt", "outputs"):
            shown = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value
            print(f"{name:>17}: {'' if shown is None else shown}")
    print("\n--- prompt ---\n" + row.prompt)
    for i, output in enumerate(row.outputs, 1):
        print(f"\n--- output {i} ---\n{output}")
    return 0


async def do_stats(args: argparse.Namespace, settings: Settings) -> int:
    async with reader(settings) as store:
        stats = await store.stats(filters_of(args))
    if args.json:
        print(json.dumps(asdict(stats), ensure_ascii=False, indent=2))
        return 0
    seconds = lambda v: "-" if v is None else f"{v:.2f}s"  # noqa: E731
    print(f"requests: {stats.total}   " + "  ".join(f"{k}: {v}" for k, v in sorted(stats.by_status.items())))
    print(f"generation p50 {seconds(stats.p50_generation_s)}  p95 {seconds(stats.p95_generation_s)}  "
          f"mean queue wait {seconds(stats.mean_queue_s)}\n")
    table(["day", "user", "name", "requests", "failed", "mean gen", "mean wait"], [
        [d.day, d.user_id, d.user_name, d.requests, d.failures, seconds(d.mean_generation_s), seconds(d.mean_queue_s)]
        for d in stats.per_user_day
    ])
    return 0


async def do_reports(args: argparse.Namespace, settings: Settings) -> int:
    async with reader(settings) as store:
        reports = await store.open_reports(args.guild, before_id=args.before, limit=args.limit)
    if args.json:
        print(json.dumps([asdict(r) for r in reports], default=str, indent=2))
        return 0
    table(["report", "request", "guild", "reporter", "when", "reason"], [
        [r.id, r.request_id, r.guild_id, r.reporter_id, short_time(r.created_at), r.reason] for r in reports
    ])
    return 0


async def do_export(args: argparse.Namespace, settings: Settings) -> int:
    filters = filters_of(args)
    async with writer(settings) as store:
        if args.output is None:
            async for chunk in store.export(args.format, filters):
                sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            rows = None
        else:
            rows = await store.export_to(args.output, args.format, filters)
            print(f"wrote {rows} request(s) to {args.output}", file=sys.stderr)
        await store.audit(None, "export", target=str(args.output or "stdout"),
                          detail={"via": "cli", "format": args.format, "rows": rows}, guild_id=filters.guild_id)
    return 0


async def do_purge(args: argparse.Namespace, settings: Settings) -> int:
    days = args.days or settings.log_retention_days
    if not days:
        raise BadInput("say how old: --days N (LOG_RETENTION_DAYS is 0, which keeps everything)")
    if not confirm(f"Delete every finished request older than {days} day(s) from {settings.database_path}?", args.yes):
        print("nothing deleted", file=sys.stderr)
        return 1
    async with writer(settings) as store:
        removed = await store.purge_older_than(days)
        await store.audit(None, "purge", detail={"via": "cli", "days": days, "removed": removed})
    print(f"deleted {removed} request(s) older than {days} day(s)")
    return 0


async def do_forget(args: argparse.Namespace, settings: Settings) -> int:
    if not confirm(f"Delete every request, report and ban of user {args.user}? This cannot be undone.", args.yes):
        print("nothing deleted", file=sys.stderr)
        return 1
    async with writer(settings) as store:
        removed = await store.forget_user(args.user)
        await store.audit(None, "forget", target=f"user:{args.user}", detail={"via": "cli", "removed": removed})
    print(f"forgot user {args.user}: {removed} request(s) deleted and the file compacted")
    return 0


def default_backup_path(database: Path, now: datetime) -> Path:
    """``continuebot-backup-20261130-031500.db`` beside the database (where doctor looks for backups)."""
    return database.with_name(f"{database.stem}-backup-{now:%Y%m%d-%H%M%S}{database.suffix or '.db'}")


async def do_backup(args: argparse.Namespace, settings: Settings) -> int:
    if args.dest is None:
        args.dest = default_backup_path(settings.database_path, datetime.now())
    if args.dest.exists() and not args.force:
        raise BadInput(f"{args.dest} exists; pass --force to replace it")
    if not args.dest.parent.is_dir():
        raise BadInput(f"the folder {args.dest.parent} does not exist")
    async with reader(settings) as store:
        await store.backup(args.dest)
    print(f"backed up {settings.database_path} to {args.dest}")
    return 0


# ---- rendering ----------------------------------------------------------------------------------------


def short_time(moment_: datetime | None) -> str:
    return moment_.strftime("%Y-%m-%d %H:%M") if moment_ else ""


def one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(0, width - 1)] + "…"


def emit_rows(rows: Sequence[RequestRow], as_json: bool, *, more: bool = False) -> None:
    """Rows as a table (or JSON lines); ``more`` adds how to ask for the next page."""
    if as_json:
        for row in rows:
            print(json.dumps(record(row), ensure_ascii=False))
        return
    width = shutil.get_terminal_size((120, 24)).columns
    text_width = max(12, (width - 62) // 2)
    table(["id", "created (UTC)", "status", "user", "guild", "prompt", "output"], [
        [r.id, short_time(r.created_at), r.status, r.user_name or r.user_id or r.source, r.guild_id,
         one_line(r.prompt, text_width), one_line(r.outputs[0] if r.outputs else (r.error or ""), text_width)]
        for r in rows
    ])
    if rows:
        print(f"\n{len(rows)} row(s)" + (f"; next page: --before {rows[-1].id}" if more else ""))


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned table (or a note that there is nothing to show)."""
    if not rows:
        print("(nothing)")
        return
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
