"""Prepacked oneDNN linears: the same greedy text as plain ``generate``, tied embeddings intact, plain where unsupported."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM

from models.backend import TorchBackend
from models.loader import load_backend
from models.packing import PackedLinear, pack_linears
from models.types import EngineConfig
from tests.models.test_backend import GREEDY, PROMPTS, ids, reference, run, specs

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch has no oneDNN")


def load(model_dir: Path, cache: Path, pack: bool) -> TorchBackend:
    return load_backend(EngineConfig(model_name=str(model_dir), device="cpu", cache_dir=cache, pack_weights=pack))


def packed_layers(model: nn.Module) -> int:
    return sum(isinstance(module, PackedLinear) for module in model.modules())


def test_every_linear_is_packed_and_the_logits_stay_those_of_the_plain_model(tiny_model_dir: Path,
                                                                              tmp_path: Path) -> None:
    plain = load(tiny_model_dir, tmp_path, pack=False).model
    packed = load(tiny_model_dir, tmp_path, pack=True).model
    assert packed_layers(plain) == 0
    assert packed_layers(packed) == 2 * 4 + 1  # per GPT-2 block: c_attn, c_proj, c_fc, mlp.c_proj; and lm_head
    # the output layer still shares its weight with the input embeddings (GPT-2 ties them)
    assert packed.get_output_embeddings().weight is packed.get_input_embeddings().weight
    tokens = torch.randint(0, 300, (3, 9))
    with torch.inference_mode():
        want, got = plain(input_ids=tokens).logits, packed(input_ids=tokens).logits
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_packed_backend_streams_the_text_plain_generate_gives(tiny_model_dir: Path, tmp_path: Path) -> None:
    plain, packed = load(tiny_model_dir, tmp_path, pack=False), load(tiny_model_dir, tmp_path, pack=True)
    params = replace(GREEDY, max_new_tokens=16)
    outcomes = run(packed, specs(params, PROMPTS[:2]), joins={2: specs(params, PROMPTS[2:], first_id=2)})
    for row_id, prompt in enumerate(PROMPTS):
        text, tokens = reference(plain, ids(plain, prompt), params.max_new_tokens)
        assert (outcomes[row_id].text, outcomes[row_id].tokens) == (text, tokens)


def test_half_precision_models_keep_their_plain_linears(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float16)
    assert pack_linears(model, batch_hint=4) == 0
    assert packed_layers(model) == 0


def test_a_packed_layer_serves_any_batch_size(tmp_path: Path) -> None:
    layer = nn.Linear(32, 48)
    packed = PackedLinear(layer, batch_hint=16, keep_weight=False)
    assert not hasattr(packed, "weight")  # the plain weight is not kept twice
    with torch.inference_mode():
        for shape in ((1, 32), (5, 32), (16, 32), (40, 32), (3, 7, 32)):
            x = torch.randn(shape)
            torch.testing.assert_close(packed(x), layer(x), rtol=1e-5, atol=1e-5)
