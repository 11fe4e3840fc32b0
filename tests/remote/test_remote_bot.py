"""The whole bot served by a real vLLM: fake Discord -> bot -> engine -> vLLM -> SQLite -> Discord."""

from __future__ import annotations

import pytest

from tests.bot.conftest import bot_environ, fake, running_bot  # noqa: F401 - fake is a fixture
from tests.bot.test_buttons import finished
from tests.remote.conftest import SERVED_NAME, VllmServer
from tests.remote.test_remote_backend import PROMPT, server_completion

pytestmark = pytest.mark.timeout(600)


async def test_continue_through_the_bot_is_the_servers_greedy_completion(fake, tiny_model_dir, tmp_path,  # noqa: F811
                                                                         vllm_server: VllmServer) -> None:
    env = bot_environ(fake, tiny_model_dir, tmp_path, MODEL_NAME="", INFERENCE_URL=vllm_server.url)
    async with running_bot(fake, env) as h:
        inter = await fake.slash("continue", {"prompt": PROMPT, "max_tokens": 16, "temperature": 0})
        row = await finished(h, inter)
        status = await fake.slash("status")
        await status.wait_acked()
    assert row.status == "done" and row.model_name == SERVED_NAME
    expected = server_completion(vllm_server, PROMPT, 16)
    assert row.outputs[0] == expected and inter.content.startswith(f"**{PROMPT}**" + expected)
    fields = {f["name"]: f["value"] for f in status.embeds[0]["fields"]}
    assert fields["Model"] == SERVED_NAME and fields["Device"].startswith("remote: 127.0.0.1")
    assert fields["Inference server"] == "up: serves smollm2, context 2048 tokens"
