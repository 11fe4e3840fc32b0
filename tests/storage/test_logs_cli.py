"""``continuebot logs``: tables, JSON, exports, confirmations, and one-line errors with exit code 2."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot.cli import build_parser
from bot.config import Settings
from storage import Store
from tests.storage.conftest import finish, new_request


def logs(settings: Settings, *argv: str) -> int:
    full = ["logs", *argv]
    args = build_parser(full).parse_args(full)
    return args.run(args, settings)


@pytest.fixture
def settings(db_path: Path) -> Settings:
    async def seed() -> None:
        async with Store(db_path) as store:
            for i in range(3):
                rid = await store.record_request(new_request(f"The keeper {i} opened the door", user_id=42))
                await finish(store, rid, f"and saw wave {i}")
            await store.add_report(rid, 9, "rude")

    asyncio.run(seed())
    return Settings(database_path=db_path)


def test_recent_search_show_stats_and_reports(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert logs(settings, "recent", "--limit", "2") == 0
    out = capsys.readouterr().out
    assert "The keeper 2 opened the door" in out and "keeper 0" not in out and "--before 2" in out
    assert logs(settings, "search", "keeper 1", "--json") == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["outputs"] == ["and saw wave 1"]
    assert logs(settings, "show", "1") == 0
    assert "and saw wave 0" in capsys.readouterr().out
    assert logs(settings, "stats", "--user", "42") == 0
    assert "requests: 3" in capsys.readouterr().out
    assert logs(settings, "reports") == 0
    assert "rude" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (("show", "99"), "no request #99"),
    (("backup", "/nonexistent-folder/x.db"), "does not exist"),
])
def test_bad_input_is_one_line_and_exit_code_2(
    settings: Settings, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    assert logs(settings, *argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv", [("show", "abc"), ("recent", "--since", "yesterday"), ("recent", "--limit", "0")])
def test_malformed_flags_exit_2_without_traceback(
    settings: Settings, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    with pytest.raises(SystemExit) as caught:
        logs(settings, *argv)
    assert caught.value.code == 2 and "Traceback" not in capsys.readouterr().err


def test_missing_database_is_a_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert logs(Settings(database_path=tmp_path / "none.db"), "recent") == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


def test_export_forget_with_confirmation_and_backup(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.jsonl"
    assert logs(settings, "export", "--format", "jsonl", "-o", str(out)) == 0
    assert len(out.read_text().splitlines()) == 3
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert logs(settings, "forget", "42") == 1
    assert logs(settings, "recent", "--json") == 0 and len(capsys.readouterr().out.splitlines()) == 3
    assert logs(settings, "forget", "42", "--yes") == 0
    assert logs(settings, "backup", str(tmp_path / "b.db")) == 0
    assert logs(settings, "backup", str(tmp_path / "b.db")) == 2  # exists, no --force
    capsys.readouterr()
    assert logs(settings, "recent", "--json") == 0 and capsys.readouterr().out == ""

    async def audited() -> list[str]:
        async with Store(settings.database_path, read_only=True) as store:
            return [a.action for a in await store.audit_log()]

    assert asyncio.run(audited()) == ["forget", "export"]


def test_backup_without_a_path_lands_beside_the_database_where_doctor_finds_it(settings: Settings) -> None:
    from bot.terminal.doctor import find_backups

    assert logs(settings, "backup") == 0
    (backup,) = find_backups(settings.database_path)
    assert backup.parent == settings.database_path.parent and "-backup-" in backup.name

    async def count() -> int:
        async with Store(backup, read_only=True) as store:
            return len(await store.recent())

    assert asyncio.run(count()) == 3
