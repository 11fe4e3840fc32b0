"""Model loading: clear errors for bad models and settings, device/dtype choice, the GGUF conversion cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from transformers import AutoTokenizer, MistralConfig, MistralForCausalLM, T5Config, T5ForConditionalGeneration

from models.errors import InvalidRequest, ModelLoadError
from models.loader import load_backend, remove_stale_temps, resolve_device, resolve_dtype, save_atomically
from models.params import DRAWN_SEED_BOUND, draw_seed, validate_params, validate_prompt
from models.types import EngineConfig, GenerationParams, ParamLimits
from tests.conftest import needs_smollm2


def config(model_name: str | None, cache_dir: Path, **kwargs: object) -> EngineConfig:
    return EngineConfig(model_name=model_name, cache_dir=cache_dir, **kwargs)  # type: ignore[arg-type]


def load_error(cfg: EngineConfig) -> str:
    with pytest.raises(ModelLoadError) as caught:
        load_backend(cfg)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_tiny_model_loads_on_cpu_in_float32_by_default(tiny_model_dir: Path, tmp_path: Path) -> None:
    messages: list[str] = []
    backend = load_backend(config(str(tiny_model_dir), tmp_path), progress=messages.append)
    assert (backend.device, backend.dtype, backend.max_context) == ("cpu", "float32", 128)
    assert any(message.startswith("Loaded") for message in messages)


def test_missing_directory_is_one_clear_error(tmp_path: Path) -> None:
    assert "no such directory" in load_error(config(str(tmp_path / "nope" / "model"), tmp_path))


def test_directory_without_a_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert "no config.json" in load_error(config(str(tmp_path / "empty"), tmp_path))


def test_a_plain_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"\0" * 16)
    assert "is a file" in load_error(config(str(tmp_path / "weights.bin"), tmp_path))


def test_corrupt_weights_are_one_clear_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    broken = shutil.copytree(tiny_model_dir, tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"this is not a safetensors file")
    assert load_error(config(str(broken), tmp_path)).startswith("could not load broken")


def test_a_seq2seq_model_is_not_a_causal_lm(tiny_model_dir: Path, tmp_path: Path) -> None:
    t5_dir = tmp_path / "t5"
    T5ForConditionalGeneration(T5Config(vocab_size=400, d_model=32, d_kv=8, d_ff=64, num_layers=1,
                                        num_heads=2)).save_pretrained(t5_dir)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(t5_dir)
    assert load_error(config(str(t5_dir), tmp_path)) == "t5 is not a causal language model"


def test_a_sliding_window_model_is_refused_clearly(tiny_model_dir: Path, tmp_path: Path) -> None:
    mistral_dir = tmp_path / "mistral"
    MistralForCausalLM(MistralConfig(vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                     num_attention_heads=2, num_key_value_heads=1,
                                     sliding_window=16)).save_pretrained(mistral_dir)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(mistral_dir)
    assert "sliding-window" in load_error(config(str(mistral_dir), tmp_path))


def test_unknown_hub_id_while_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # This box has no network; offline mode makes the hub lookup fail at once instead of retrying.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    message = load_error(config("nobody-here/no-such-model", tmp_path))
    assert "could not find nobody-here/no-such-model on the Hugging Face hub" in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_cuda_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert "CUDA is not available" in load_error(config(str(tiny_model_dir), tmp_path, device="cuda"))


def test_device_and_dtype_resolution() -> None:
    cpu = torch.device("cpu")
    assert resolve_device("cpu") == cpu and resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("bfloat16", cpu) == torch.bfloat16
    with pytest.raises(ModelLoadError, match="DTYPE='int3'"):
        resolve_dtype("int3", cpu)
    with pytest.raises(ModelLoadError, match="DEVICE='toaster'"):
        resolve_device("toaster")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == cpu


class _TokenizerThatDiesMidSave:
    def save_pretrained(self, folder: Path) -> None:
        (Path(folder) / "tokenizer.json").write_text("{")
        raise OSError("disk full")


def test_interrupted_save_leaves_no_half_cache(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = load_backend(config(str(tiny_model_dir), tmp_path)).model
    target = tmp_path / "cache" / "converted"
    target.parent.mkdir()
    with pytest.raises(OSError, match="disk full"):
        save_atomically(model, _TokenizerThatDiesMidSave(), target)
    assert list(target.parent.iterdir()) == []


def test_temp_folders_left_by_a_killed_conversion_are_removed_later(tmp_path: Path) -> None:
    import os
    import time

    target = tmp_path / "SmolLM2-135M-Instruct-123"
    stale, live = tmp_path / f".{target.name}.tmp-old", tmp_path / f".{target.name}.tmp-new"
    other = tmp_path / ".another-model.tmp-old"
    for folder in (stale, live, other):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"half")
    hours_ago = time.time() - 2 * 3600
    for folder in (stale, other):
        os.utime(folder, (hours_ago, hours_ago))
    remove_stale_temps(target)
    assert not stale.exists(), "a conversion killed hours ago left it"
    assert live.exists(), "a conversion may be running in another process right now"
    assert other.exists(), "only this model's temp folders are touched"


@pytest.mark.slow
@needs_smollm2
def test_bundled_model_is_converted_once_then_loaded_from_the_cache(smollm2_cache_dir: Path) -> None:
    first: list[str] = []
    load_backend(config(None, smollm2_cache_dir, device="cpu"), progress=first.append)
    second: list[str] = []
    backend = load_backend(config(None, smollm2_cache_dir, device="cpu"), progress=second.append)
    assert backend.model_name == "SmolLM2-135M-Instruct"
    assert not any("Converting" in message for message in second)
    assert any("cached" in message for message in second)
    [converted] = smollm2_cache_dir.glob("SmolLM2-135M-Instruct-*")
    assert (converted / "model.safetensors").is_file() and (converted / "tokenizer.json").is_file()
    assert not list(smollm2_cache_dir.glob(".SmolLM2-135M-Instruct-*.tmp-*")), "temp folder left behind"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (GenerationParams(max_new_tokens=0), "max_new_tokens"),
        (GenerationParams(max_new_tokens=257), "max_new_tokens"),
        (GenerationParams(temperature=-0.1), "temperature"),
        (GenerationParams(temperature=2.5), "temperature"),
        (GenerationParams(top_p=0.0), "top_p"),
        (GenerationParams(top_p=1.1), "top_p"),
        (GenerationParams(top_k=1001), "top_k"),
        (GenerationParams(top_k=2.5), "top_k"),  # type: ignore[arg-type]
        (GenerationParams(repetition_penalty=0.9), "repetition_penalty"),
        (GenerationParams(variants=6), "variants"),
        (GenerationParams(seed=-1), "seed"),
        (GenerationParams(seed=2**63), "seed"),
        (GenerationParams(temperature=float("nan")), "temperature"),
    ],
)
def test_out_of_range_params_name_the_field(params: GenerationParams, field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate_params(params, ParamLimits())
    assert caught.value.field == field and str(caught.value).startswith(f"{field}: ")


def test_limits_and_edges_are_accepted() -> None:
    limits = ParamLimits(max_new_tokens=32, max_variants=2)
    validate_params(GenerationParams(max_new_tokens=32, temperature=0, top_p=1.0, top_k=0, repetition_penalty=2.0,
                                     seed=2**63 - 1, variants=2), limits)
    with pytest.raises(InvalidRequest, match="variants: must be between 1 and 2"):
        validate_params(GenerationParams(max_new_tokens=8, variants=3), limits)


def test_prompt_rules() -> None:
    limits = ParamLimits(max_prompt_chars=10)
    validate_prompt("short", limits)
    for prompt, words in (("   \n", "empty"), ("x" * 11, "limit is 10")):
        with pytest.raises(InvalidRequest, match=words):
            validate_prompt(prompt, limits)


def test_drawn_seeds_are_valid_and_vary() -> None:
    seeds = {draw_seed() for _ in range(20)}
    assert len(seeds) > 1 and all(0 <= seed < DRAWN_SEED_BOUND for seed in seeds)
    validate_params(GenerationParams(seed=max(seeds)), ParamLimits())


def test_torch_threads_default_to_every_core_and_a_number_is_kept(tiny_model_dir: Path, tmp_path: Path) -> None:
    import os

    from models.loader import torch_threads

    assert torch_threads(0) == len(os.sched_getaffinity(0))
    assert torch_threads(3) == 3
    before = torch.get_num_threads()
    try:
        load_backend(EngineConfig(model_name=str(tiny_model_dir), device="cpu", cache_dir=tmp_path, torch_threads=2))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


DURATION_CLAIM = r"about \d+ ?s\b"


def test_the_conversion_message_claims_no_duration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    from models import loader

    gguf = tmp_path / "little.gguf"
    gguf.write_bytes(b"GGUF" + bytes(60))

    def disk_full(source: Path, target: Path) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(loader, "convert_gguf", disk_full)  # stop before the real (slow) conversion
    said: list[str] = []
    with pytest.raises(ModelLoadError, match="No space left"):
        loader.resolve_source(config(str(gguf), tmp_path / "cache"), said.append)
    [message] = said
    assert "little.gguf" in message and "first start" in message
    assert not re.search(DURATION_CLAIM, message), message


def test_doctor_claims_no_conversion_time_either(tmp_path: Path) -> None:
    import re

    from bot import model_files

    gguf = tmp_path / "little.gguf"
    gguf.write_bytes(b"GGUF" + bytes(60))
    found = model_files.locate(str(gguf), tmp_path / "cache")
    assert not found.error and "converted into" in found.detail
    assert not re.search(DURATION_CLAIM, found.detail), found.detail
