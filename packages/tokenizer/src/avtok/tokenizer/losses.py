"""Tokenizer training losses: AToken (seed 002 §3.3, eq. 4–7) and AVTok (seed 000). All differentiable.

AToken: ``L = λrec L_rec + λsem L_sem + λKL L_KL`` with ``L_rec = λ1 L1 + λP L_perceptual + λG L_Gram
(+ λCLIP L_CLIP)`` (defaults λrec 0.2, λsem 1, λKL 1e-8; λ1 1, λP 10, λG 1e3, λCLIP 1; τ 2).
Reconstruction terms are means, i.e. normalised per patch/pixel rather than summed, so the scale does
not depend on resolution; L1 is taken at native resolution, feature losses at the backbone's.
AVTok: per-modality reconstruction (video L1 + perceptual/Gram; audio mel L1 + multi-resolution STFT),
representation alignment of continuous tokens to a frozen foundation model, AR-prior next-token loss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avtok.kernels import gram_loss
from avtok.media_io.spectral import MelConfig, log_mel
from avtok.tokenizer.perceptual import FeatureBackbone, freeze, perceptual_distance
from avtok.tokenizer.visual.posterior import kl_divergence

__all__ = [
    "l1_loss", "kl_loss", "distillation_kl", "similarity_logits", "sigmoid_alignment_loss", "load_teacher",
    "mel_l1_loss", "wave_mel_l1_loss", "mrstft_loss", "representation_alignment_loss", "ar_prior_loss",
    "ReconstructionWeights", "ImageReconstructionLoss", "ATokenLossWeights", "atoken_objective",
    "AVTokLossWeights", "avtok_objective",
]

# KL(N(mean, exp(logvar)) || N(0, I)) summed over channels, mean over tokens: the one implementation
# lives in avtok.tokenizer.posterior.
kl_loss = kl_divergence


def l1_loss(pred: Tensor | Sequence[Tensor], target: Tensor | Sequence[Tensor]) -> Tensor:
    """Mean absolute error; lists of differently-sized images count every pixel once (per-patch norm.)."""
    if isinstance(pred, Tensor):
        pred, target = [pred], [target]
    total, count = None, 0
    for i, (p, t) in enumerate(zip(pred, target, strict=True)):
        if p.shape != t.shape:
            raise ValueError(f"l1_loss item {i}: pred {tuple(p.shape)} vs target {tuple(t.shape)}; "
                             "shapes must match")
        s = (p.float() - t.float()).abs().sum()
        total, count = (s if total is None else total + s), count + p.numel()
    return total / max(count, 1)


def distillation_kl(student: Tensor, teacher: Tensor, *, tau: float = 2.0) -> Tensor:
    """AToken eq. 7: ``KL(softmax(teacher/τ) || softmax(student/τ))`` over the last dim, mean over rows.

    ``student``/``teacher``: similarity logits (..., K) (e.g. image-to-text similarities); the teacher is
    detached (frozen). No τ² factor: the paper's equation has none.
    """
    if student.shape != teacher.shape:
        raise ValueError(f"distillation_kl: student {tuple(student.shape)} vs teacher "
                         f"{tuple(teacher.shape)}; score both against the same text embeddings")
    log_p_t = F.log_softmax(teacher.detach().float() / tau, dim=-1)
    log_p_s = F.log_softmax(student.float() / tau, dim=-1)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1).mean()


def similarity_logits(vision: Tensor, text: Tensor, *, scale: float = 1.0) -> Tensor:
    """Cosine similarities ``scale * v̂ t̂ᵀ``: vision (B, D), text (K, D) → (B, K)."""
    return scale * F.normalize(vision.float(), dim=-1) @ F.normalize(text.float(), dim=-1).T


def sigmoid_alignment_loss(vision: Tensor, text: Tensor, *, logit_scale: Tensor,
                           logit_bias: Tensor) -> Tensor:
    """SigLIP's pairwise sigmoid loss (Zhai et al. 2023) for B paired embeddings vision (B, D), text (B, D).

    ``logits = exp(logit_scale) v̂ t̂ᵀ + logit_bias``; label +1 on the diagonal, -1 elsewhere;
    ``L = -Σ_ij log σ(label_ij · logit_ij) / B`` (SigLIP initialises logit_scale = log 10, bias = -10).
    """
    if vision.shape != text.shape or vision.ndim != 2:
        raise ValueError(f"sigmoid_alignment_loss: vision {tuple(vision.shape)} and text {tuple(text.shape)} "
                         "must both be (B, D) with row i of each forming a pair")
    logits = similarity_logits(vision, text, scale=1.0) * logit_scale.exp() + logit_bias  # (B, B)
    labels = 2.0 * torch.eye(len(vision), device=logits.device) - 1.0
    return -F.logsigmoid(labels * logits).sum() / len(vision)


def load_teacher(path: str | Path, *, build: Callable[[], nn.Module] | None = None) -> nn.Module:
    """A frozen teacher (e.g. SigLIP2's vision tower) from a local file; nothing is downloaded.

    TorchScript archives load directly; a ``.safetensors`` / torch state dict needs ``build`` (a
    constructor of the matching module), loaded with weights_only semantics.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"teacher {path}: no such file. SigLIP2 is not shipped offline: export it "
                                "on a connected machine (torch.jit.save or safetensors) and pass the "
                                "local path")
    if build is None:
        try:
            teacher = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as exc:
            raise ValueError(f"teacher {path}: not a TorchScript archive; pass build=<module constructor> to "
                             "load a state dict into it") from exc
    else:
        from avtok.tokenizer.perceptual import load_tensors

        teacher = build()
        teacher.load_state_dict(load_tensors(path))
    return freeze(teacher)


def mel_l1_loss(pred: Tensor, target: Tensor) -> Tensor:
    """L1 between (normalised) log-mels (..., n_mels, frames): AVTok's audio reconstruction term."""
    return l1_loss(pred, target)


def wave_mel_l1_loss(pred: Tensor, target: Tensor, *, cfg: MelConfig | None = None) -> Tensor:
    """L1 between log-mels of waves (..., N) computed with avtok.media_io's HiFi-GAN-matched ``log_mel``."""
    cfg = cfg or MelConfig()
    return l1_loss(log_mel(pred.float(), cfg), log_mel(target.float(), cfg))


def _magnitude(x: Tensor, n_fft: int, hop: int, win: int) -> Tensor:
    flat = x.reshape(-1, x.shape[-1])  # (B, N)
    window = torch.hann_window(win, dtype=flat.dtype, device=flat.device)
    spec = torch.stft(flat, n_fft, hop_length=hop, win_length=win, window=window, return_complex=True)
    return spec.abs().reshape(*x.shape[:-1], *spec.shape[-2:])  # (..., F, frames)


MRSTFT_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))


def mrstft_loss(pred: Tensor, target: Tensor, *,
                resolutions: Sequence[tuple[int, int, int]] = MRSTFT_RESOLUTIONS,
                eps: float = 1e-7) -> Tensor:
    """Multi-resolution STFT loss (spectral convergence + log-magnitude L1, mean over resolutions and items).

    The same formula as ``avtok.eval.audio_metrics.mrstft_distance`` (the tests check equality), but in
    fp32 and without its NaN checks, which would sync every step and pre-empt the trainer's NaN guard.
    """
    if pred.shape != target.shape:
        raise ValueError(f"mrstft_loss: pred {tuple(pred.shape)} vs target {tuple(target.shape)}; must match")
    total = pred.new_zeros((), dtype=torch.float32)
    for n_fft, hop, win in resolutions:
        p, t = _magnitude(pred.float(), n_fft, hop, win), _magnitude(target.float(), n_fft, hop, win)
        sc = (t - p).flatten(-2).norm(dim=-1) / t.flatten(-2).norm(dim=-1).clamp_min(eps)  # (...)
        log_l1 = (t.clamp_min(eps).log() - p.clamp_min(eps).log()).abs().flatten(-2).mean(-1)  # (...)
        total = total + (sc + log_l1).mean()
    return total / len(resolutions)


def representation_alignment_loss(tokens: Tensor, target: Tensor) -> Tensor:
    """``1 - cos`` between projected continuous tokens (B, L, D) and frozen foundation features (B, L, D)."""
    if tokens.shape != target.shape:
        raise ValueError(f"representation_alignment_loss: tokens {tuple(tokens.shape)} vs target "
                         f"{tuple(target.shape)}; project tokens to the target width and pool to the same L")
    return 1.0 - F.cosine_similarity(tokens.float(), target.detach().float(), dim=-1).mean()


def ar_prior_loss(logits: Tensor, tokens: Tensor, *, ignore_index: int = -100) -> Tensor:
    """Next-token cross-entropy of an AR prior: ``logits[:, t]`` (B, L, V) predicts ``tokens[:, t+1]``."""
    if logits.shape[:2] != tokens.shape[:2] or logits.shape[1] < 2:
        raise ValueError(f"ar_prior_loss: logits {tuple(logits.shape)} must be (B, L, V) with L >= 2 and "
                         f"tokens {tuple(tokens.shape)} must be (B, L)")
    pred = logits[:, :-1].reshape(-1, logits.shape[-1]).float()  # (B (L-1), V)
    return F.cross_entropy(pred, tokens[:, 1:].reshape(-1).long(), ignore_index=ignore_index)


@dataclass(kw_only=True)
class ReconstructionWeights:
    """AToken eq. 6 weights within the reconstruction loss (λ_LPIPS → ``perceptual``)."""

    l1: float = 1.0
    perceptual: float = 10.0
    gram: float = 1e3
    semantic: float = 1.0


def _nchw(x: Tensor) -> Tensor:
    if x.shape[-1] != 3:
        raise ValueError(f"images: expected channels-last (..., H, W, 3) in [-1, 1], got {tuple(x.shape)}")
    return x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2)  # (B, 3, H, W)


class ImageReconstructionLoss(nn.Module):
    """L1 (native resolution) + perceptual + Gram (backbone resolution) [+ semantic] for images/frames.

    Inputs are channels-last ``(..., H, W, 3)`` in ``[-1, 1]`` (video frames flatten into the batch), or
    lists of such tensors at different resolutions. ``semantic`` (optional) maps images (B, 3, H, W) to
    embeddings (B, D) of a frozen model (AToken: CLIP); its term is ``1 - cos``.
    """

    def __init__(self, backbone: FeatureBackbone | None, *, weights: ReconstructionWeights | None = None,
                 semantic: Callable[[Tensor], Tensor] | None = None, gram_backend: str = "auto") -> None:
        super().__init__()
        self.backbone, self.semantic, self.gram_backend = backbone, semantic, gram_backend
        self.weights = weights or ReconstructionWeights()

    def _batch(self, x: Tensor | Sequence[Tensor]) -> Tensor:
        if isinstance(x, Tensor):
            return _nchw(x)
        side = self.backbone.resolution  # resize each to the backbone's side so they stack
        return torch.cat([F.interpolate(_nchw(i).float(), size=(side, side), mode="bilinear",
                                        antialias=True) for i in x])

    def forward(self, recon: Tensor | Sequence[Tensor],
                target: Tensor | Sequence[Tensor]) -> dict[str, Tensor]:
        w = self.weights
        terms = {"l1": l1_loss(recon, target)}
        total = w.l1 * terms["l1"]
        if self.backbone is not None and (w.perceptual or w.gram):
            x, y = self._batch(recon), self._batch(target)
            fx = self.backbone(x)
            with torch.no_grad():
                fy = self.backbone(y.detach())
            terms["perceptual"] = perceptual_distance(fx, fy, channel_weights=getattr(self.backbone,
                                                                                      "lpips_weights", None))
            terms["gram"] = gram_loss(fx, fy, backend=self.gram_backend)
            total = total + w.perceptual * terms["perceptual"] + w.gram * terms["gram"]
        if self.semantic is not None and w.semantic:
            ex = self.semantic(self._batch(recon))
            with torch.no_grad():
                ey = self.semantic(self._batch(target).detach())
            terms["semantic"] = 1.0 - F.cosine_similarity(ex.float(), ey.float(), dim=-1).mean()
            total = total + w.semantic * terms["semantic"]
        terms["rec"] = total
        return terms


@dataclass(kw_only=True)
class ATokenLossWeights:
    """AToken eq. 4 weights (seed 002 §3.5) and the distillation temperature τ."""

    rec: float = 0.2
    sem: float = 1.0
    kl: float = 1e-8
    tau: float = 2.0
    reconstruction: ReconstructionWeights = field(default_factory=ReconstructionWeights)


def atoken_objective(*, rec: Tensor, sem: Tensor | None = None, kl: Tensor | None = None,
                     weights: ATokenLossWeights | None = None, parts: Mapping[str, Tensor] | None = None
                     ) -> dict[str, Tensor]:
    """``loss = λrec·rec + λsem·sem + λKL·kl`` plus every part for logging (a Trainer step's return value)."""
    w = weights or ATokenLossWeights()
    loss = w.rec * rec
    out = dict(parts or {}, rec=rec)
    if sem is not None:
        loss, out["sem"] = loss + w.sem * sem, sem
    if kl is not None:
        loss, out["kl"] = loss + w.kl * kl, kl
    return dict(out, loss=loss)


@dataclass(kw_only=True)
class AVTokLossWeights:
    """AVTok term weights. The seed does not state values: all default to 1.0 (set them per experiment)."""

    video: float = 1.0
    audio_mel: float = 1.0
    audio_stft: float = 1.0
    align: float = 1.0
    ar_prior: float = 1.0


def avtok_objective(*, video: Tensor | None = None, audio_mel: Tensor | None = None,
                    audio_stft: Tensor | None = None, align: Tensor | None = None,
                    ar_prior: Tensor | None = None,
                    weights: AVTokLossWeights | None = None) -> dict[str, Tensor]:
    """Weighted sum of whichever AVTok terms a curriculum stage computes (VFAL stages drop some)."""
    w = weights or AVTokLossWeights()
    terms = {k: v for k, v in {"video": video, "audio_mel": audio_mel, "audio_stft": audio_stft,
                               "align": align, "ar_prior": ar_prior}.items() if v is not None}
    if not terms:
        raise ValueError("avtok_objective: no loss terms given; pass at least one of video, audio_mel, "
                         "audio_stft, align, ar_prior")
    loss = sum(getattr(w, k) * v for k, v in terms.items())
    return dict(terms, loss=loss)
