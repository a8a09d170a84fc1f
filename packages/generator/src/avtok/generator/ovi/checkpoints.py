"""Reading Ovi's official autoencoder checkpoints and loading them key for key, with one-line errors.

Files (under Ovi's ``ckpt_dir``): ``Wan2.2-TI2V-5B/Wan2.2_VAE.pth`` (video VAE),
``MMAudio/ext_weights/v1-16.pth`` (audio VAE), ``MMAudio/ext_weights/best_netG.pt`` (vocoder, under
the key ``generator``). A ``.pth`` / ``.pt`` is read with ``torch.load(weights_only=True)`` only (plain
tensors, no code runs); ``.safetensors`` files with safetensors.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from torch import Tensor, nn

from avtok.train.pretrained import read_state_dict as read_foreign_state_dict

__all__ = ["OVI_CHECKPOINT_FILES", "load_exact", "read_state_dict"]

OVI_CHECKPOINT_FILES = {
    "video_vae": "Wan2.2-TI2V-5B/Wan2.2_VAE.pth",
    "audio_vae": "MMAudio/ext_weights/v1-16.pth",
    "vocoder": "MMAudio/ext_weights/best_netG.pt",
}


def read_state_dict(path: str | Path, *, key: str | None = None) -> dict[str, Tensor]:
    """Tensors of an Ovi checkpoint file (:func:`avtok.train.pretrained.read_state_dict`); ``key`` selects a
    sub-dict (``best_netG.pt`` keeps its weights under ``generator``)."""
    return read_foreign_state_dict(path, key=key, source="Ovi's official file (download Ovi's weights with its "
                                   "download_weights.py on a networked machine)")


def load_exact(module: nn.Module, state: Mapping[str, Tensor], *, source: str) -> None:
    """``module.load_state_dict(state, strict=True)`` with one error naming every missing / unknown key and shape."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unknown = sorted(set(state) - set(own))
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if state[k].shape != own[k].shape
    ]
    if missing or unknown or shapes:
        parts = [f"{len(missing)} missing {missing[:5]}", f"{len(unknown)} unknown {unknown[:5]}"]
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches {shapes[:3]}")
        raise ValueError(
            f"{source}: does not match {type(module).__name__} (" + "; ".join(parts) + "); "
            "pass the official checkpoint and the config it was trained with"
        )
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
