"""Loading trained weights: ``state_dict`` files only, never pickled code."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn

__all__ = ["load_state_dict"]


def load_state_dict(model: nn.Module, path: Any) -> nn.Module:
    """Load weights saved with ``torch.save(model.state_dict(), path)`` into ``model``; return it.

    The file is read with ``torch.load(path, map_location="cpu", weights_only=True)``: only
    tensors and plain containers, never pickled code, so an untrusted file cannot run anything.
    A checkpoint dict with the weights under ``"state_dict"`` is accepted, and a ``"module."``
    prefix (``DataParallel``) is removed when the model's own names lack it.

    Raises
    ------
    FileNotFoundError
        When there is no file at ``path``.
    ValueError
        Naming the file: when it cannot be read with ``weights_only=True`` (pickled objects,
        truncated or not a torch file), does not hold a mapping, or does not match ``model``.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        raise ValueError(
            f"{path} could not be read as a state_dict with weights_only=True ({_reason(err)}); it is truncated "
            "or holds pickled objects (refused); save weights with torch.save(model.state_dict(), path)"
        ) from err
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(
            f"{path} holds a {type(state).__name__}, not a state_dict (a mapping name -> tensor)"
        )
    own = model.state_dict()
    if (
        state
        and all(k.startswith("module.") for k in state)
        and not any(k.startswith("module.") for k in own)
    ):
        state = {k[len("module.") :]: v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"the state_dict in {path} does not match {type(model).__name__}: {err}") from err
    return model


def _reason(err: BaseException) -> str:
    """The informative line of torch's message (its weights_only text is several paragraphs)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if "WeightsUnpickler error" in line or "GLOBAL" in line or "Unsupported global" in line:
            return line.rstrip(".")[:200]
    first = lines[0] if lines else type(err).__name__
    return first.split(". ")[0][:200]
