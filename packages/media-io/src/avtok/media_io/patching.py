"""Space-time patching in AToken's sparse 4D form, and batching of variable-size patch sets.

``patchify`` cuts a video (T, H, W, C), an image (H, W, C) or a log-mel (n_mels, frames) (a 1-channel
image) into t x p x p blocks. Each block becomes one token: a feature vector of length t*p*p*C laid out
as (dt, dh, dw, c) and a coordinate (t, x, y, z) in patch units, where x is the column (width) index,
y the row (height) index and z = 0 (AToken: images at t = z = 0, videos along t with z = 0).
Images are zero-padded to t frames; sizes that are not multiples of the patch are zero-padded at the
end of each axis, and ``valid`` records which positions are real so ``unpatchify`` removes the padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from einops import rearrange

from avtok.media_io.errors import MediaError

_MODALITIES = ("video", "image", "audio")


@dataclass(kw_only=True)
class Patches:
    """One sample as a set of tokens.

    features: (L, t*p*p*C) float, blocks flattened in (dt, dh, dw, c) order.
    coords:   (L, 4) int64 (t, x, y, z) in patch units, L ordered t-major then row (y) then column (x).
    grid:     (gt, gh, gw) patches per axis, L = gt * gh * gw.
    patch:    (t, p, p) block size.
    shape:    the input's original shape, (T, H, W, C) / (H, W, C) / (n_mels, frames).
    modality: "video" | "image" | "audio".
    valid:    (L, t*p*p) bool, True where the block position (dt, dh, dw) holds real input and False where it
              is padding (time padding of images, border padding of odd sizes); ``valid.any(1)`` marks tokens
              with any real content and ``valid`` broadcast over C masks a per-pixel loss.
    """

    features: torch.Tensor  # (L, D)
    coords: torch.Tensor  # (L, 4) int64
    grid: tuple[int, int, int]
    patch: tuple[int, int, int]
    shape: tuple[int, ...]
    modality: str
    valid: torch.Tensor  # (L, t*p*p) bool

    @property
    def num_tokens(self) -> int:
        return int(self.features.shape[0])

    @property
    def channels(self) -> int:
        return 1 if self.modality == "audio" else int(self.shape[-1])


def _as_video(x: torch.Tensor, modality: str | None) -> tuple[torch.Tensor, str]:
    """Input -> (T, H, W, C) and its modality."""
    if not isinstance(x, torch.Tensor):
        raise MediaError(f"patchify: expected a torch.Tensor, got {type(x).__name__}")
    if modality is None:
        modality = {4: "video", 3: "image", 2: "audio"}.get(x.ndim)
    if modality not in _MODALITIES:
        raise MediaError(
            f"patchify: cannot infer the modality of shape {tuple(x.shape)} (modality={modality!r}); "
            "fix: pass video (T,H,W,C), image (H,W,C) or mel (n_mels, frames), or modality=..."
        )
    want = {"video": 4, "image": 3, "audio": 2}[modality]
    if x.ndim != want or min(x.shape) < 1:
        raise MediaError(f"patchify: a {modality} must have {want} non-empty dims, got {tuple(x.shape)}")
    if modality == "image":
        x = x[None]
    elif modality == "audio":
        x = x[None, :, :, None]  # (1, n_mels, frames, 1): a grayscale image, frames along the width
    return x, modality


def _check_patch(patch: Sequence[int]) -> tuple[int, int, int]:
    if len(patch) != 3 or not all(isinstance(v, int) and v >= 1 for v in patch):
        raise MediaError(
            f"patchify: patch must be (t, p, p) positive ints, got {patch!r}; fix: e.g. (4, 16, 16)"
        )
    return int(patch[0]), int(patch[1]), int(patch[2])


def _coords(grid: tuple[int, int, int]) -> torch.Tensor:
    gt, gh, gw = grid
    t, y, x = torch.meshgrid(torch.arange(gt), torch.arange(gh), torch.arange(gw), indexing="ij")
    z = torch.zeros_like(t)
    return torch.stack([t, x, y, z], dim=-1).reshape(-1, 4)  # (L, 4) (t, x, y, z)


def _valid(
    size: tuple[int, int, int], grid: tuple[int, int, int], patch: tuple[int, int, int]
) -> torch.Tensor:
    axes = [torch.arange(g * p) < n for n, g, p in zip(size, grid, patch, strict=True)]
    mask = axes[0][:, None, None] & axes[1][None, :, None] & axes[2][None, None, :]  # (gt*pt, gh*ph, gw*pw)
    return rearrange(
        mask, "(gt pt) (gh ph) (gw pw) -> (gt gh gw) (pt ph pw)", pt=patch[0], ph=patch[1], pw=patch[2]
    )


def patchify(x: torch.Tensor, *, patch: Sequence[int] = (4, 16, 16), modality: str | None = None) -> Patches:
    """Cut a video, image or mel into t x p x p patches (zero-padding partial blocks); see Patches."""
    video, modality = _as_video(x, modality)  # (T, H, W, C)
    pt, ph, pw = _check_patch(patch)
    size = tuple(int(s) for s in video.shape[:3])
    grid = tuple(-(-n // p) for n, p in zip(size, (pt, ph, pw), strict=True))
    pads = [g * p - n for n, g, p in zip(size, grid, (pt, ph, pw), strict=True)]
    if any(pads):
        video = torch.nn.functional.pad(video, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
    feats = rearrange(video, "(gt pt) (gh ph) (gw pw) c -> (gt gh gw) (pt ph pw c)", pt=pt, ph=ph, pw=pw)
    return Patches(
        features=feats,
        coords=_coords(grid),
        grid=grid,
        patch=(pt, ph, pw),
        shape=tuple(int(s) for s in x.shape),
        modality=modality,
        valid=_valid(size, grid, (pt, ph, pw)),
    )


def unpatchify(p: Patches, features: torch.Tensor | None = None) -> torch.Tensor:
    """Exact inverse of :func:`patchify`: tokens (L, D) -> the original shape with padding removed.

    ``features`` (L, D) replaces ``p.features`` (e.g. a model's reconstruction), keeping p's layout.
    """
    feats = p.features if features is None else features
    gt, gh, gw = p.grid
    pt, ph, pw = p.patch
    c = p.channels
    if feats.shape != (gt * gh * gw, pt * ph * pw * c):
        raise MediaError(
            f"unpatchify: features must be {(gt * gh * gw, pt * ph * pw * c)} for grid {p.grid} and "
            f"patch {p.patch}, got {tuple(feats.shape)}; fix: pass the tokens of this sample"
        )
    video = rearrange(
        feats,
        "(gt gh gw) (pt ph pw c) -> (gt pt) (gh ph) (gw pw) c",
        gt=gt,
        gh=gh,
        gw=gw,
        pt=pt,
        ph=ph,
        pw=pw,
        c=c,
    )
    if p.modality == "video":
        return video[: p.shape[0], : p.shape[1], : p.shape[2]]
    if p.modality == "image":
        return video[0, : p.shape[0], : p.shape[1]]
    return video[0, : p.shape[0], : p.shape[1], 0]  # audio: (n_mels, frames)


@dataclass(kw_only=True, frozen=True)
class PatchLayout:
    """A sample's metadata without its tokens (what pack/pad_batch need to rebuild Patches)."""

    grid: tuple[int, int, int]
    patch: tuple[int, int, int]
    shape: tuple[int, ...]
    modality: str


def _layout(p: Patches) -> PatchLayout:
    return PatchLayout(grid=p.grid, patch=p.patch, shape=p.shape, modality=p.modality)


def _check_batch(items: Sequence[Patches], who: str) -> int:
    if not items:
        raise MediaError(f"{who}: got no samples; fix: pass a non-empty list of Patches")
    dims = {int(p.features.shape[1]) for p in items}
    if len(dims) != 1:
        raise MediaError(
            f"{who}: samples have different token sizes {sorted(dims)}; fix: use one patch size "
            "and channel count per batch (e.g. pad images to 3 channels)"
        )
    return dims.pop()


@dataclass(kw_only=True)
class PackedPatches:
    """Variable-length samples concatenated into one sequence (for varlen / block-diagonal attention).

    features (ΣL, D), coords (ΣL, 4) int64, valid (ΣL, t*p*p) bool, cu_seqlens (N+1,) int32 with
    sample i at rows cu_seqlens[i]:cu_seqlens[i+1], sample_ids (ΣL,) int64, items: N PatchLayouts.
    """

    features: torch.Tensor
    coords: torch.Tensor
    valid: torch.Tensor
    cu_seqlens: torch.Tensor
    sample_ids: torch.Tensor
    items: tuple[PatchLayout, ...]

    @property
    def max_seqlen(self) -> int:
        return int((self.cu_seqlens[1:] - self.cu_seqlens[:-1]).max())


def pack(items: Sequence[Patches]) -> PackedPatches:
    """Concatenate samples along the token axis, with cu_seqlens and per-token sample ids."""
    _check_batch(items, "pack")
    lengths = torch.tensor([p.num_tokens for p in items], dtype=torch.int64)
    cu = torch.zeros(len(items) + 1, dtype=torch.int32)
    cu[1:] = torch.cumsum(lengths, 0).to(torch.int32)
    return PackedPatches(
        features=torch.cat([p.features for p in items]),
        coords=torch.cat([p.coords for p in items]),
        valid=torch.cat([p.valid for p in items]),
        cu_seqlens=cu,
        sample_ids=torch.repeat_interleave(torch.arange(len(items)), lengths),
        items=tuple(_layout(p) for p in items),
    )


def unpack(packed: PackedPatches, features: torch.Tensor | None = None) -> list[Patches]:
    """Split a packed batch back into Patches; ``features`` (ΣL, D') replaces the packed features."""
    feats = packed.features if features is None else features
    if feats.shape[0] != packed.features.shape[0]:
        raise MediaError(
            f"unpack: features have {feats.shape[0]} rows, the batch has {packed.features.shape[0]}"
        )
    bounds = packed.cu_seqlens.tolist()
    return [
        Patches(
            features=feats[a:b],
            coords=packed.coords[a:b],
            valid=packed.valid[a:b],
            grid=m.grid,
            patch=m.patch,
            shape=m.shape,
            modality=m.modality,
        )
        for m, a, b in zip(packed.items, bounds[:-1], bounds[1:], strict=True)
    ]


@dataclass(kw_only=True)
class PaddedPatches:
    """Samples padded to the longest: features (B, Lmax, D) (zeros past a sample's end), coords
    (B, Lmax, 4) (zeros past the end), valid (B, Lmax, t*p*p), mask (B, Lmax) bool (True = real token),
    lengths (B,) int64, items: B PatchLayouts."""

    features: torch.Tensor
    coords: torch.Tensor
    valid: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    items: tuple[PatchLayout, ...]


def pad_batch(items: Sequence[Patches]) -> PaddedPatches:
    """Stack samples into a padded batch with a token mask."""
    dim = _check_batch(items, "pad_batch")
    lengths = torch.tensor([p.num_tokens for p in items], dtype=torch.int64)
    b, lmax, first = len(items), int(lengths.max()), items[0]
    feats = first.features.new_zeros(b, lmax, dim)  # (B, Lmax, D)
    coords = torch.zeros(b, lmax, 4, dtype=torch.int64)
    valid = torch.zeros(b, lmax, first.valid.shape[1], dtype=torch.bool)
    for i, p in enumerate(items):
        n = p.num_tokens
        feats[i, :n], coords[i, :n], valid[i, :n] = p.features, p.coords, p.valid
    mask = torch.arange(lmax)[None, :] < lengths[:, None]  # (B, Lmax)
    return PaddedPatches(
        features=feats,
        coords=coords,
        valid=valid,
        mask=mask,
        lengths=lengths,
        items=tuple(_layout(p) for p in items),
    )


def unpad_batch(padded: PaddedPatches, features: torch.Tensor | None = None) -> list[Patches]:
    """Inverse of :func:`pad_batch`; ``features`` (B, Lmax, D') replaces the padded features."""
    feats = padded.features if features is None else features
    return [
        Patches(
            features=feats[i, :n],
            coords=padded.coords[i, :n],
            valid=padded.valid[i, :n],
            grid=m.grid,
            patch=m.patch,
            shape=m.shape,
            modality=m.modality,
        )
        for i, (m, n) in enumerate(zip(padded.items, padded.lengths.tolist(), strict=True))
    ]
