"""Finds, converts (GGUF, once) and loads the model and tokenizer named by ``EngineConfig``."""

from __future__ import annotations

import logging
import shutil
import tempfile
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache
from transformers.cache_utils import DynamicLayer

from models.backend import TorchBackend
from models.errors import ModelLoadError
from models.packing import pack_linears
from models.sources import GgufModel, ModelSource, locate
from models.types import EngineConfig, auto_batch_size

log = logging.getLogger(__name__)

STALE_TEMP_S = 3600.0  # a conversion's temp folder this old was left by a killed process (one takes ~1 min)
DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}
Progress = Callable[[str], None]


def resolve_device(requested: str) -> torch.device:
    """``auto`` -> cuda when available else cpu; asking for an absent device is a ModelLoadError."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise ModelLoadError(f"DEVICE={requested!r} is not a device torch knows ({exc})") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"DEVICE={requested} was asked for but CUDA is not available; use DEVICE=cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ModelLoadError(f"DEVICE={requested}: only {torch.cuda.device_count()} CUDA device(s) present")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError("DEVICE=mps was asked for but MPS is not available; use DEVICE=cpu or auto")
    return device


def resolve_dtype(requested: str, device: torch.device) -> torch.dtype:
    """``auto`` -> bf16 on GPUs that support it, else fp16 on GPU, fp32 on CPU."""
    if requested != "auto":
        if requested not in DTYPES:
            raise ModelLoadError(f"DTYPE={requested!r} is not one of auto, float32, float16, bfloat16")
        return DTYPES[requested]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def resolve_source(config: EngineConfig, progress: Progress) -> ModelSource:
    """Turn MODEL_NAME (None, a GGUF file, a directory or a hub id) into a loadable source."""
    found = locate(config.model_name, Path(config.cache_dir))
    if isinstance(found, GgufModel):
        return gguf_source(found, Path(config.cache_dir), progress)
    return found


def gguf_source(found: GgufModel, cache_dir: Path, progress: Progress) -> ModelSource:
    """The safetensors copy of a GGUF in ``cache_dir``, converted on first use (GGUF parsing is slow)."""
    remove_stale_temps(found.converted)
    if found.is_converted:
        progress(f"Using the converted model cached in {found.converted}")
        return ModelSource(name=found.name, location=str(found.converted))
    progress(f"Converting {found.gguf.name} to safetensors in {cache_dir} (first start only; later starts reuse it)")
    try:
        convert_gguf(found.gguf, found.converted)
    except OSError as exc:
        raise ModelLoadError(
            f"could not convert {found.gguf.name} into MODEL_CACHE_DIR={cache_dir}: {exc}"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - a damaged GGUF fails in many ways inside transformers/gguf
        raise ModelLoadError(f"could not convert {found.gguf}: {_first_line(exc)}") from exc
    return ModelSource(name=found.name, location=str(found.converted))


def convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantize ``gguf`` and save model + tokenizer to ``target`` atomically (temp dir, then rename)."""
    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
    # Saved weights are plain float tensors now; without this, save/load treats them as still quantized.
    setattr(model, "hf_quantizer", None)  # noqa: B010 - typed as a module attribute, it is plain state
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    save_atomically(model, tokenizer, target)
    log.info("converted %s to %s in %.1f s", gguf.name, target, time.perf_counter() - started)


def save_atomically(model: Any, tokenizer: Any, target: Path) -> None:
    """Save into a temp folder beside ``target``, then rename: a crash never leaves a half cache."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _make_readable(tmp)
        tmp.rename(target)
    except OSError:
        if not (target / "config.json").is_file():
            raise
        log.info("another process saved %s first; using its copy", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_temps(target: Path, max_age_s: float = STALE_TEMP_S) -> None:
    """Delete temp folders of ``target`` that a killed conversion left (older than any live one can be)."""
    now = time.time()
    for folder in target.parent.glob(f".{target.name}.tmp-*"):
        try:
            if folder.is_dir() and now - folder.stat().st_mtime > max_age_s:
                shutil.rmtree(folder)
                log.info("removed %s, left by an interrupted conversion", folder)
        except OSError as exc:
            log.warning("could not remove the stale folder %s: %s", folder, exc)


def _make_readable(folder: Path) -> None:
    # mkdtemp makes a 0700 folder; a cache built by root (e.g. at image build) must be readable by the service user.
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)


def _from_pretrained(auto_class: Any, source: ModelSource, **kwargs: Any) -> Any:
    if source.hub_cache is None:
        return auto_class.from_pretrained(source.location, **kwargs)
    kwargs["cache_dir"] = source.hub_cache
    try:
        # A model downloaded before loads without the network (an offline lookup retries for a minute).
        return auto_class.from_pretrained(source.location, local_files_only=True, **kwargs)
    except OSError:
        log.info("%s is not in %s yet; downloading it from the Hugging Face hub", source.name, source.hub_cache)
        return auto_class.from_pretrained(source.location, **kwargs)


def _load_pretrained(source: ModelSource, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
    try:
        tokenizer = _from_pretrained(AutoTokenizer, source)
    except OSError as exc:
        where = "on the Hugging Face hub or in the cache" if source.hub_cache else "in its directory"
        raise ModelLoadError(f"could not find {source.name} {where}: {_first_line(exc)}") from exc
    except Exception as exc:  # noqa: BLE001 - many failure types; all mean "no usable tokenizer"
        raise ModelLoadError(f"could not load the tokenizer of {source.name}: {_first_line(exc)}") from exc
    try:
        model = _from_pretrained(AutoModelForCausalLM, source, dtype=dtype)
    except ValueError as exc:
        if "Unrecognized configuration class" in str(exc):
            raise ModelLoadError(f"{source.name} is not a causal language model") from exc
        raise ModelLoadError(f"could not load {source.name}: {_first_line(exc)}") from exc
    except Exception as exc:  # noqa: BLE001 - corrupt files raise OSError, SafetensorError, RuntimeError...
        raise ModelLoadError(f"could not load {source.name}: {_first_line(exc)}") from exc
    try:
        model.to(device)
    except (RuntimeError, torch.OutOfMemoryError) as exc:
        raise ModelLoadError(f"could not place {source.name} on {device}: {_first_line(exc)}") from exc
    model.eval()
    return model, tokenizer


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _check_cache_layout(model: Any, name: str) -> None:
    # Rows join and leave the batch by editing the KV cache; only plain full-attention layers allow that.
    cache = DynamicCache(config=model.config)
    if any(type(layer) is not DynamicLayer for layer in cache.layers):
        raise ModelLoadError(f"{name} uses a sliding-window or hybrid cache, which continuebot does not support")


def torch_threads(requested: int) -> int:
    """Torch threads for the model: ``requested``, or by default every core this process may use.

    Measured on the 2-core box with one thread owning torch (docs/engine.md): a 16-request burst
    ran at 112 tok/s with 2 threads and 72-84 with 1 (or 1 for decoding, 2 for prefill), a lone
    request the same either way, and the event loop's lag p99 stayed at 4 ms. (An earlier
    measurement that favoured leaving a core free was taken with torch also run on a second
    thread, which halves the speed of both.)
    """
    return requested if requested > 0 else max(1, len(os.sched_getaffinity(0)))


def load_backend(config: EngineConfig, progress: Progress = lambda msg: None) -> TorchBackend:
    """Load the configured model onto its device as a ``TorchBackend``; ModelLoadError on failure."""
    started = time.perf_counter()
    torch.set_num_threads(torch_threads(config.torch_threads))  # on this (the model's own) thread
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    source = resolve_source(config, progress)
    progress(f"Loading {source.name} on {device} ({str(dtype).removeprefix('torch.')})")
    model, tokenizer = _load_pretrained(source, device, dtype)
    _check_cache_layout(model, source.name)
    if config.pack_weights:
        packed = pack_linears(model, config.max_batch_size or auto_batch_size(str(device)))
        if packed:
            log.info("packed %d linear layers for oneDNN", packed)
    backend = TorchBackend(model, tokenizer, source.name, config.prompt_overflow)
    elapsed = time.perf_counter() - started
    log.info("loaded %s on %s (%s) in %.1f s", backend.model_name, backend.device, backend.dtype, elapsed)
    progress(f"Loaded {source.name} in {elapsed:.1f} s")
    return backend
