"""``continuebot doctor``: checks settings, model, device, database and disk; prints what to fix."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

from dotenv import dotenv_values

from bot import model_files
from bot.config import TOKEN_FIX, Settings, check_token, load_settings
from bot.errors import ConfigError, InvalidSettings

log = logging.getLogger(__name__)

Status = Literal["OK", "WARN", "FAIL"]
GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class CheckResult:
    """One row of the doctor's table; ``fix`` says what to do when the status is not OK."""

    check: str
    status: Status
    detail: str
    fix: str = ""


def ok(check: str, detail: str) -> CheckResult:
    return CheckResult(check, "OK", detail)


def warn(check: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(check, "WARN", detail, fix)


def fail(check: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(check, "FAIL", detail, fix)


# --- command line -------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``doctor`` subcommand (it reads the settings itself, so a bad .env is reported, not fatal)."""
    parser = subparsers.add_parser(
        "doctor",
        help="check settings, model, GPU, database and disk, and say how to fix problems",
        description="Check everything continuebot needs. Exit code 0: no FAIL rows; 1: something must be fixed.",
    )
    parser.add_argument("--load", action="store_true", help="also load the model (slow; proves it really works)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(run=run, needs_settings=False)


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """Run every check, print the table, return 0 when nothing failed, else 1."""
    results = run_checks(args.env_file, load_model=args.load)
    print(json.dumps([asdict(r) for r in results], indent=2) if args.json else format_table(results))
    return 0 if all(r.status != "FAIL" for r in results) else 1


def run_checks(
    env_file: Path | None, environ: Mapping[str, str] | None = None, *, load_model: bool = False
) -> list[CheckResult]:
    """Every check in order; the model, device, database and disk checks need valid settings."""
    results, settings = check_settings(env_file, environ)
    if settings is None:
        results.append(check_token_shape(raw_values(env_file, environ).get("DISCORD_TOKEN", "").strip() or None))
        return results
    results.append(check_token_shape(settings.discord_token))
    results.append(check_shards(settings))
    if settings.inference_url:  # a server generates: no local model or device to check
        results.append(check_inference_server(settings))
    else:
        results.append(check_device(settings))
        results.extend(check_model(settings))
    if load_model:
        results.append(check_model_loads(settings))
    results.extend(check_database(settings))
    results.extend(check_disk(settings))
    return results


def format_table(results: list[CheckResult]) -> str:
    """Rows aligned in columns; each problem gets an indented ``fix:`` line under it."""
    width = max(len(r.check) for r in results)
    lines = [f"{'CHECK':<{width}}  STATUS  DETAIL"]
    for r in results:
        lines.append(f"{r.check:<{width}}  {r.status:<6}  {r.detail}")
        if r.status != "OK" and r.fix:
            lines.append(f"{'':<{width}}          fix: {r.fix}")
    failed = sum(r.status == "FAIL" for r in results)
    warned = sum(r.status == "WARN" for r in results)
    lines.append("")
    lines.append("All good." if not failed and not warned else f"{failed} failed, {warned} warning(s).")
    return "\n".join(lines)


# --- settings -------------------------------------------------------------------------------


def raw_values(env_file: Path | None, environ: Mapping[str, str] | None) -> dict[str, str]:
    """The merged raw settings exactly as ``load_settings`` sees them (the environment wins)."""
    values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    return values


def check_settings(
    env_file: Path | None, environ: Mapping[str, str] | None = None
) -> tuple[list[CheckResult], Settings | None]:
    """A row per invalid setting (each reported, not just the first), plus the .env file itself."""
    results = [check_env_file(env_file)]
    values = raw_values(env_file, environ)
    try:
        settings = load_settings(environ=values, env_file=None)
    except InvalidSettings as invalid:
        for error in invalid.errors:
            results.append(
                fail(f"setting {error.setting}", error.message,
                     error.fix or f"correct {error.setting} in {env_file or 'the environment'}")
            )
        return results, None
    results.append(ok("settings", "every setting is valid"))
    return results, settings


def check_env_file(env_file: Path | None) -> CheckResult:
    """The settings file exists and is not readable by other users (it holds the token)."""
    if env_file is None:
        return ok(".env", "not used; settings come from the environment")
    if not env_file.is_file():
        return warn(
            ".env",
            f"{env_file} not found; using the environment and defaults",
            "cp .env.example .env and fill in DISCORD_TOKEN",
        )
    if env_file.stat().st_mode & (stat.S_IROTH | stat.S_IWOTH):
        return warn(".env", f"{env_file} is readable by every user on this machine", f"chmod 600 {env_file}")
    return ok(".env", str(env_file))


def check_token_shape(token: str | None) -> CheckResult:
    """DISCORD_TOKEN looks like a bot token; its value is never shown."""
    try:
        check_token(token)
    except ConfigError as exc:
        return fail("DISCORD_TOKEN", exc.message, exc.fix or TOKEN_FIX)
    return ok("DISCORD_TOKEN", "has the shape of a bot token (not checked with Discord)")


# --- device -----------------------------------------------------------------------------------


def nvidia_driver_version() -> str | None:
    """The NVIDIA kernel driver's version line, when one is loaded (Linux)."""
    try:
        first = Path("/proc/driver/nvidia/version").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    words = first.split()
    numbers = [w for w in words if w.count(".") >= 1 and w.replace(".", "").isdigit()]
    return numbers[0] if numbers else first.strip()


def check_device(settings: Settings) -> CheckResult:
    """The device DEVICE asks for is there; CUDA build, GPU name, memory and driver."""
    import torch

    driver = nvidia_driver_version()
    cuda_build = torch.version.cuda
    if torch.cuda.is_available():
        index = int(settings.device.split(":")[1]) if settings.device.startswith("cuda:") else 0
        count = torch.cuda.device_count()
        if index >= count:
            return fail("device", f"DEVICE={settings.device} but only {count} GPU(s) visible", "use cuda:0 .. "
                        f"cuda:{count - 1}, or check CUDA_VISIBLE_DEVICES")
        props = torch.cuda.get_device_properties(index)
        detail = f"cuda:{index} {props.name}, {props.total_memory / GIB:.1f} GiB, CUDA {cuda_build}"
        if settings.device == "cpu":
            return ok("device", f"cpu (as DEVICE asks; a GPU is available: {detail})")
        return ok("device", detail + (f", driver {driver}" if driver else ""))
    if settings.device == "mps" or (settings.device == "auto" and torch.backends.mps.is_available()):
        if torch.backends.mps.is_available():
            return ok("device", "mps (Apple GPU)")
        return fail("device", "DEVICE=mps but MPS is not available", "set DEVICE=auto or cpu")
    why = "this torch is a CPU-only build" if cuda_build is None else f"torch (CUDA {cuda_build}) sees no GPU"
    fix = (
        "install a CUDA build of torch (pytorch.org > Get Started)"
        if cuda_build is None
        else "check nvidia-smi; in Docker run with --gpus all (compose: the GPU reservation)"
    )
    if settings.device.startswith("cuda"):
        return fail("device", f"DEVICE={settings.device} but {why}", fix)
    if driver is not None:
        return warn("device", f"running on CPU: an NVIDIA driver ({driver}) is loaded but {why}", fix)
    return ok("device", "cpu (no GPU visible)")


# --- model --------------------------------------------------------------------------------------


def check_shards(settings: Settings) -> CheckResult:
    """Which shards this process will run, and what the other processes must run (docs/shards.md)."""
    count, ids = settings.shard_count, settings.shard_ids
    if count is None:
        return ok("shards", "the count Discord recommends, all in this process")
    if ids is None or len(ids) == count:
        return ok("shards", f"all {count} in this process")
    others = ",".join(str(i) for i in range(count) if i not in ids)
    note = "" if settings.runs_shard_zero() else "; the process with shard 0 syncs the commands"
    return ok("shards", f"{','.join(map(str, ids))} of {count} here; run {others} in other processes "
                        f"with the same SHARD_COUNT and DATABASE_PATH{note}")


def check_inference_server(settings: Settings) -> CheckResult:
    """INFERENCE_URL answers, serves the model, and says its context length (the key is never shown)."""
    from models.errors import ModelLoadError
    from models.remote import RemoteBackend

    try:
        backend = RemoteBackend(replace(settings.engine_config(), warmup=False))
    except ModelLoadError as exc:
        return fail("inference server", str(exc),
                    "start the server, or fix INFERENCE_URL, INFERENCE_MODEL or INFERENCE_API_KEY in .env")
    backend.close()
    context = f", context {backend.max_context} tokens" if backend.max_context else ", context length not listed"
    return ok("inference server", f"{settings.inference_url} serves {backend.model_name}{context}")


def check_model(settings: Settings) -> list[CheckResult]:
    """The model files are there (or will be fetched), and fit in free memory."""
    found = model_files.locate(settings.model_name, settings.model_cache_dir)
    if found.error:
        return [fail("model", found.error, found.fix)]
    rows = [ok("model", found.detail) if not found.fix else warn("model", found.detail, found.fix)]
    if found.params:
        rows.append(check_model_memory(settings, found.params))
    return rows


def bytes_per_param(settings: Settings, on_gpu: bool) -> int:
    """What one weight costs in memory with the DTYPE setting (auto: half on GPU, float32 on CPU)."""
    if settings.dtype == "float32" or (settings.dtype == "auto" and not on_gpu):
        return 4
    return 2


def available_memory(settings: Settings) -> tuple[str, int | None, bool]:
    """(what, free bytes, on_gpu) for the device the model will be placed on."""
    import psutil
    import torch

    wants_gpu = settings.device.startswith("cuda") or settings.device == "auto"
    if wants_gpu and torch.cuda.is_available():
        index = int(settings.device.split(":")[1]) if ":" in settings.device else 0
        try:
            free, _total = torch.cuda.mem_get_info(index)
        except RuntimeError:
            return "VRAM", None, True
        return "free VRAM", int(free), True
    return "available RAM", int(psutil.virtual_memory().available), False


def check_model_memory(settings: Settings, params: int) -> CheckResult:
    """The weights (plus ~20% for activations and the KV cache) fit in free RAM or VRAM."""
    what, free, on_gpu = available_memory(settings)
    need = int(params * bytes_per_param(settings, on_gpu) * 1.2)
    detail = f"needs about {need / GIB:.2f} GiB ({params / 1e6:.0f}M parameters)"
    if free is None:
        return warn("model memory", detail + f"; {what} unknown", "check nvidia-smi")
    detail += f", {what} {free / GIB:.1f} GiB"
    if need > free:
        return fail(
            "model memory",
            detail,
            "choose a smaller MODEL_NAME, set DTYPE=float16/bfloat16 on a GPU, or free memory",
        )
    if need > free * 0.8:
        return warn("model memory", detail, "little headroom: lower MAX_BATCH_SIZE or use a smaller model")
    return ok("model memory", detail)


def check_model_loads(settings: Settings, progress: Callable[[str], None] | None = None) -> CheckResult:
    """Really load the model (converting or downloading it into the cache if needed) and generate two tokens.

    It runs through the engine, as the bot does: the model is loaded, warmed up and used on the
    engine's one inference thread, never on this one.
    """
    from models.errors import ModelLoadError

    started = time.perf_counter()
    try:
        ready_s = asyncio.run(_load_and_warm(settings, progress or (lambda m: print(f"  {m}", file=sys.stderr))))
    except ModelLoadError as exc:
        return fail("model load", str(exc), "see the model row above; MODEL_NAME must name a causal LM")
    except (OSError, RuntimeError, ValueError) as exc:
        log.debug("model load failed", exc_info=True)
        return fail("model load", f"{type(exc).__name__}: {exc}", "see the model and memory rows above")
    return ok("model load", f"loaded and generated in {ready_s:.1f} s ({time.perf_counter() - started:.1f} s in all)")


async def _load_and_warm(settings: Settings, progress: Callable[[str], None]) -> float:
    from models.engine import Engine

    started = time.perf_counter()
    async with Engine(replace(settings.engine_config(), warmup=True), progress=progress):
        return time.perf_counter() - started


# --- database --------------------------------------------------------------------------------


def writable_dir(directory: Path) -> str | None:
    """None when files can be created in ``directory`` (or it can be created); else why not."""
    probe = directory
    while not probe.exists():
        if probe.parent == probe:
            return f"no existing parent of {directory}"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, not a directory"
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".continuebot-doctor-"):
            pass
    except OSError as exc:
        return f"cannot create files in {probe}: {exc.strerror or exc}"
    return None


def check_database(settings: Settings) -> list[CheckResult]:
    """The database's directory is writable; an existing file is healthy and not from a newer version."""
    path = settings.database_path
    problem = writable_dir(path.parent.resolve() if str(path.parent) else Path.cwd())
    if problem:
        return [fail("database", problem, "set DATABASE_PATH to a file in a directory the bot's user may write")]
    if not path.exists():
        return [ok("database", f"{path} will be created at the first start")]
    if not os.access(path, os.R_OK | os.W_OK):
        return [fail("database", f"{path} is not readable and writable by this user",
                     f"chown the bot's user {path}")]
    return [ok("database", f"{path}"), *database_health_rows(path)]


def database_health_rows(path: Path) -> list[CheckResult]:
    """Rows from the store's own read-only inspection: schema version, integrity, size, backups."""
    from storage import inspect_database

    health = asyncio.run(inspect_database(path))
    rows = [schema_row(health.schema_version, health.supported_version, health.newer_than_supported)]
    size = f"{health.size_bytes / MIB:.1f} MiB (+{health.wal_bytes / MIB:.1f} MiB WAL)"
    if health.integrity_ok is False:
        rows.append(fail("database integrity", f"quick_check: {health.integrity_message}; {size}",
                         "stop the bot and restore the newest backup (README: Backups)"))
    elif health.integrity_ok is None:
        rows.append(warn("database integrity", f"not checked: {health.integrity_message}; {size}",
                         "see the database rows above"))
    else:
        rows.append(ok("database integrity", f"quick_check ok, {size}"))
    rows.append(backup_row(find_backups(path)))
    return rows


def schema_row(version: int | None, supported: int, newer: bool) -> CheckResult:
    """Whether this continuebot can open the database: same, older (migrates by itself) or newer schema."""
    if version is None or version == 0:
        return ok("database schema", "empty; the tables are created at the first start")
    detail = f"version {version}, this continuebot supports up to {supported}"
    if newer:
        return fail("database schema", detail + ": written by a newer continuebot",
                    "upgrade continuebot again, or restore a backup made before the upgrade")
    if version < supported:
        return ok("database schema", detail + "; migrated automatically at the next start")
    return ok("database schema", detail)


def find_backups(database: Path) -> list[Path]:
    """Backup files next to the database (``<name>*backup*``, ``*.bak``) or in a ``backups`` folder."""
    folder = database.parent
    candidates = [*folder.glob(f"{database.stem}*backup*"), *folder.glob(f"{database.stem}*.bak")]
    if (folder / "backups").is_dir():
        candidates.extend((folder / "backups").glob(f"{database.stem}*"))
    return sorted({p for p in candidates if p.is_file() and not p.name.endswith(("-wal", "-shm", "-journal"))})


def backup_row(backups: list[Path]) -> CheckResult:
    """How many backups there are and how old the newest is."""
    if not backups:
        return warn("database backups", "none found next to the database",
                    "continuebot logs backup (daily, e.g. from cron or a systemd timer)")
    newest = max(backups, key=lambda p: p.stat().st_mtime)
    age_days = (time.time() - newest.stat().st_mtime) / 86400
    detail = f"{len(backups)} found, newest {newest.name} ({age_days:.1f} days old)"
    if age_days > 7:
        return warn("database backups", detail, "continuebot logs backup")
    return ok("database backups", detail)


# --- disk -------------------------------------------------------------------------------------


def free_bytes(path: Path) -> int:
    """Free space on the filesystem that holds ``path`` (or its nearest existing parent)."""
    probe = path.resolve()
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_disk(settings: Settings) -> list[CheckResult]:
    """Free space for the database and the model cache."""
    rows = []
    for name, path, low in (
        ("disk (database)", settings.database_path.parent, GIB),
        ("disk (model cache)", settings.model_cache_dir, 2 * GIB),
    ):
        free = free_bytes(path)
        detail = f"{free / GIB:.1f} GiB free at {path}"
        if free < 100 * MIB:
            rows.append(fail(name, detail, "free some space or move it to a bigger disk"))
        elif free < low:
            rows.append(warn(name, detail, "free some space or move it to a bigger disk"))
        else:
            rows.append(ok(name, detail))
    return rows
