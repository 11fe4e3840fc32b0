"""Linear layers whose weights are prepacked once for oneDNN on CPU, as vLLM's CPU backend does."""

from __future__ import annotations

import logging
from typing import Any, TypeGuard

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

log = logging.getLogger(__name__)

TOLERANCE = 1e-3  # relative: a packed product further than this from F.linear's means a broken kernel


class PackedLinear(nn.Module):
    """``F.linear`` with the weight reordered once into the blocked layout oneDNN's kernel reads.

    On CPU, ``F.linear`` hands MKL the weight transposed and MKL repacks it for every call: for a
    decode step that is the whole model copied once more per step. The product is the same
    (each output is the same dot product; only the summation order inside a block may differ,
    as it does between batch sizes with ``F.linear``).
    """

    def __init__(self, layer: nn.Linear | Conv1D, batch_hint: int, keep_weight: bool) -> None:
        super().__init__()
        weight = _linear_weight(layer)  # [out, in]
        self.out_features, self.in_features = weight.shape
        # An opaque oneDNN tensor: kept as a plain attribute so that nothing iterating parameters,
        # buffers or the state dict meets it; the original weight is dropped with the old layer.
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), batch_hint)
        self.bias = layer.bias
        if keep_weight:  # tied to the input embeddings, which still look tokens up in it
            self.weight = layer.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")


def packing_supported(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether this torch build can pack linears for ``device``/``dtype`` (CPU float32 or bfloat16 only)."""
    return (
        device.type == "cpu"
        and dtype in (torch.float32, torch.bfloat16)
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


def pack_linears(model: nn.Module, batch_hint: int) -> int:
    """Replace every ``nn.Linear`` (and GPT-2 ``Conv1D``) of ``model`` by a ``PackedLinear``; returns how many.

    Does nothing (returns 0) where packing is unsupported or its self-check fails, so a torch
    build without a working oneDNN still runs, with plain linears.
    """
    first = next(model.parameters())
    if not packing_supported(first.device, first.dtype):
        return 0
    if not _self_check(first.dtype, batch_hint):
        return 0
    tied = _input_embedding_weight(model)
    targets = [(parent, name, child) for parent in model.modules()
               for name, child in parent.named_children() if _is_plain_linear(child)]
    with torch.no_grad():
        for parent, name, child in targets:
            setattr(parent, name, PackedLinear(child, batch_hint, keep_weight=child.weight is tied))
    return len(targets)


def _is_plain_linear(layer: nn.Module) -> TypeGuard[nn.Linear | Conv1D]:
    return type(layer) in (nn.Linear, Conv1D)  # not subclasses: they may compute something else


def _linear_weight(layer: nn.Linear | Conv1D) -> torch.Tensor:
    """The weight as ``F.linear`` takes it: ``[out, in]`` (GPT-2's ``Conv1D`` stores it transposed)."""
    weight = layer.weight.detach()
    return weight.t() if isinstance(layer, Conv1D) else weight


def _input_embedding_weight(model: nn.Module) -> torch.Tensor | None:
    get = getattr(model, "get_input_embeddings", None)
    embeddings: Any = get() if callable(get) else None
    return getattr(embeddings, "weight", None)


def _self_check(dtype: torch.dtype, batch_hint: int) -> bool:
    """Pack one small random layer and compare its products with ``F.linear``'s for a few batch sizes."""
    generator = torch.Generator().manual_seed(0)
    layer = torch.nn.utils.skip_init(nn.Linear, 64, 96, dtype=dtype)  # no draw from torch's global generator
    with torch.no_grad():
        layer.weight.copy_(torch.randn(96, 64, generator=generator))
        layer.bias.copy_(torch.randn(96, generator=generator))
        try:
            packed = PackedLinear(layer, batch_hint, keep_weight=False)
            for rows in (1, 3, batch_hint):
                x = torch.randn(rows, 64, generator=generator).to(dtype)
                want, got = layer(x).float(), packed(x).float()
                if not torch.allclose(got, want, rtol=TOLERANCE if dtype == torch.float32 else 2e-2, atol=1e-2):
                    log.warning("packed linears disagree with F.linear on this machine; using plain ones")
                    return False
        except (RuntimeError, TypeError) as exc:
            log.warning("packed linears are unavailable (%s); using plain ones", exc)
            return False
    return True
