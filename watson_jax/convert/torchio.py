"""Reading and writing ``.pth`` state dicts; torch is imported only here, and only when a file is read or
written."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import WeightsError


def _torch():
    try:
        import torch
    except ImportError as err:
        raise WeightsError(
            "reading or writing .pth files needs PyTorch: pip install torch==2.13.0 "
            "(or the project's 'torch' extra)"
        ) from err
    return torch


def _load_state_dict(path: Path, what: str = "the reference implementation") -> dict:
    """A ``.pth`` state dict as {key: torch.Tensor}, loaded without executing pickled code."""
    torch = _torch()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises various types for corrupt or unsafe files
        raise WeightsError(
            f"cannot read {path} as a PyTorch state dict ({type(err).__name__}: {err})."
        ) from err
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a state dict.")
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise WeightsError(
            f"{path}: entries {not_tensors} are not tensors; this is not a state dict of {what}."
        )
    return state


def _to_numpy(path: Path, tensor) -> np.ndarray:
    try:
        return tensor.detach().cpu().numpy()
    except (TypeError, RuntimeError) as err:  # e.g. bfloat16 tensors, which numpy cannot hold
        raise WeightsError(f"{path}: cannot convert its tensors to numpy ({err}).") from err


def read_reference(path: Path) -> dict[str, np.ndarray]:
    """A reference ``.pth`` as {key: numpy array}, loaded without executing pickled code."""
    return {k: _to_numpy(path, v) for k, v in _load_state_dict(path).items()}


def write_reference(path: Path, state: OrderedDict[str, np.ndarray]) -> None:
    """Save {key: array} as a torch state dict (C-contiguous tensors, in the given key order)."""
    torch = _torch()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(OrderedDict((k, torch.from_numpy(np.array(v, order="C"))) for k, v in state.items()), path)
