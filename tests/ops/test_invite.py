"""``continuebot invite`` prints a URL whose scopes and permissions are exactly what the code uses."""

from __future__ import annotations

import argparse
from urllib.parse import parse_qs, urlsplit

import discord
import pytest

from bot.config import load_settings
from bot.permissions import OAUTH_SCOPES, REQUIRED_FLAGS, missing_permissions, required_permissions
from bot.terminal import invite
from tests.ops.conftest import APP_ID, make_token


def run_invite(capsys: pytest.CaptureFixture[str], env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    invite.register(parser.add_subparsers())
    args = parser.parse_args(["invite", *argv])
    code = args.run(args, load_settings(env, env_file=None))
    out, err = capsys.readouterr()
    return code, out, err


def test_invite_url_carries_the_code_permissions_and_both_scopes(capsys: pytest.CaptureFixture[str]) -> None:
    token = make_token()
    code, out, err = run_invite(capsys, {"DISCORD_TOKEN": token})

    assert code == 0
    url = urlsplit(out.strip())
    query = parse_qs(url.query)
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://discord.com/oauth2/authorize"
    assert query["client_id"] == [str(APP_ID)]  # read from the token's first part
    assert query["scope"][0].split() == list(OAUTH_SCOPES) == ["bot", "applications.commands"]
    assert int(query["permissions"][0]) == required_permissions().value
    assert token not in out + err


def test_client_id_option_wins_and_no_token_is_needed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_invite(capsys, {}, "--client-id", "987654321098765432")
    assert code == 0
    assert parse_qs(urlsplit(out.strip()).query)["client_id"] == ["987654321098765432"]


@pytest.mark.parametrize(
    ("env", "argv", "message"),
    [
        ({}, (), "pass --client-id"),
        ({"DISCORD_TOKEN": "bm90LWFuLWlk.GxYz12." + "h" * 38}, (), "pass --client-id"),
        ({}, ("--client-id", "my-bot"), "numeric application id"),
    ],
)
def test_no_usable_client_id_is_a_clear_error(capsys, env, argv, message) -> None:
    code, out, err = run_invite(capsys, env, *argv)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err
    if "DISCORD_TOKEN" in env:
        assert env["DISCORD_TOKEN"] not in err


def test_permissions_are_small_and_each_has_a_reason() -> None:
    granted = required_permissions()
    assert {name for name, value in granted if value} == {
        "read_messages",  # discord.py's name for view_channel
        "send_messages",
        "send_messages_in_threads",
        "embed_links",
        "attach_files",
    }
    assert all(reason for _, reason in REQUIRED_FLAGS)
    dangerous = discord.Permissions(administrator=True, manage_messages=True, mention_everyone=True,
                                    manage_guild=True, kick_members=True, ban_members=True)
    assert granted.value & dangerous.value == 0
    # A fresh object each call: callers cannot change what the next one gets.
    granted.administrator = True
    assert not required_permissions().administrator


def test_missing_permissions_names_what_a_channel_lacks() -> None:
    assert missing_permissions(required_permissions()) == ()
    channel = discord.Permissions(view_channel=True, send_messages=True)
    assert set(missing_permissions(channel)) == {
        "send_messages_in_threads", "embed_links", "attach_files"
    }
