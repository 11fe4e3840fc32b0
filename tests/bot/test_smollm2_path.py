"""The bundled SmolLM2 through the whole path: fake Discord -> bot -> engine -> SQLite -> Discord."""

import pytest

from tests.bot.conftest import bot_environ, running_bot
from tests.bot.test_buttons import finished
from tests.conftest import needs_smollm2


@pytest.mark.slow
@needs_smollm2
async def test_bundled_model_end_to_end(fake, tiny_model_dir, smollm2_cache_dir, tmp_path):
    env = bot_environ(fake, tiny_model_dir, tmp_path, MODEL_NAME="", MODEL_CACHE_DIR=str(smollm2_cache_dir))
    async with running_bot(fake, env) as h:
        inter = await fake.slash("continue", {"prompt": "The capital of France is", "max_tokens": 8, "temperature": 0})
        row = await finished(h, inter)
        assert row.model_name.startswith("SmolLM2") or "smollm2" in row.model_name.lower()
        assert row.status == "done" and row.completion_tokens[0] > 0
        assert "Paris" in row.outputs[0]
        assert inter.content.startswith("**The capital of France is**" + row.outputs[0])
