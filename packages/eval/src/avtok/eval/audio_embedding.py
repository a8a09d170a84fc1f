"""FAD: Fréchet distance on audio embeddings from the aiSFX CNN (weights inside the PyPI wheel ``aisfx``).

aiSFX (Ma & Lerch, ISMIR 2022) is a 9-layer CNN (the DCASE cross-task baseline) trained on several
sound-effects libraries; its 512-d embedding describes general audio (music, effects, ambience),
which suits sounding video better than a speaker encoder. Input: 44.1 kHz mono, peak-normalised,
96-band HTK mel power spectrogram (n_fft 2048, hop 1024, L1-normalised filters, 0–22.05 kHz),
``log10(1e4 S + 1)`` scaled by the paper's training max, cut in 100-frame blocks (~2.3 s) with hop 50.
That is the package's librosa spectrogram path re-done in torchaudio; the paper's Essentia path
differs slightly (documented by aiSFX itself). The checkpoint is read with ``weights_only=True``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from torch import nn

from avtok.eval.frechet import FrechetStats, frechet_distance
from avtok.eval.validation import check_finite, check_min_ndim

__all__ = ["AisfxEmbedder", "aisfx_checkpoint_path", "fad"]

SAMPLE_RATE = 44100
N_FFT, HOP, N_MELS = 2048, 1024, 96
BLOCK, BLOCK_HOP = 100, 50
SPEC_MAX = 9.457798957824707  # aiSFX "original" normalisation: max over its training spectrograms
EMBED_DIM = 512
_INSTALL = "pip install --no-deps aisfx==0.1.2"


def aisfx_checkpoint_path() -> Path:
    """``checkpoint.pth`` inside the installed aisfx wheel (not imported: its code pins old numpy)."""
    spec = importlib.util.find_spec("aisfx")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"FAD needs the aiSFX weights from PyPI: {_INSTALL} (no-deps: it pins old numpy)")
    path = Path(spec.origin).parent / "models" / "checkpoint.pth"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: aiSFX checkpoint missing; reinstall with {_INSTALL}")
    return path


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(cout), nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return F.max_pool2d(x, pool)


class AisfxNet(nn.Module):
    """aiSFX ``EmbeddingNet('max', 3, 1, 64)``: (B, frames, 96) → (B, 512); same state-dict keys."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_block1, self.conv_block2 = _ConvBlock(1, 64), _ConvBlock(64, 128)
        self.conv_block3, self.conv_block4 = _ConvBlock(128, 256), _ConvBlock(256, 512)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = spec.unsqueeze(1)  # (B, 1, frames, mels)
        for block, pool in ((self.conv_block1, 2), (self.conv_block2, 2), (self.conv_block3, 2)):
            x = block(x, pool)
        x = self.conv_block4(x, 1)  # (B, 512, frames/8, mels/8)
        return x.mean(dim=3).amax(dim=2)  # (B, 512)


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    from numpy._core.multiarray import scalar  # the checkpoint pickles numpy ints in its label map

    allowed = [(scalar, "numpy.core.multiarray.scalar"), np.dtype, type(np.dtype("int64"))]
    with torch.serialization.safe_globals(allowed):
        weights, _labels = torch.load(path, map_location="cpu", weights_only=True)
    prefix = "embedding_net."
    return {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}


def _mel_filters(device: torch.device) -> torch.Tensor:
    fb = AF.melscale_fbanks(N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, N_MELS, SAMPLE_RATE, norm=None, mel_scale="htk")
    return (fb / fb.sum(0, keepdim=True).clamp_min(1e-12)).to(device)  # (F, 96), librosa norm=1.0


class AisfxEmbedder:
    """Waveform (C, N) or (N,) at ``sample_rate`` → block embeddings (blocks, 512) float32."""

    def __init__(self, *, device: str | torch.device = "cpu", batch_size: int = 16) -> None:
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.net = AisfxNet().eval().to(self.device)
        self.net.load_state_dict(_load_state(aisfx_checkpoint_path()))
        self.fb = _mel_filters(self.device)

    def spectrogram(self, wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Normalised log-mel input of the network, (frames, 96)."""
        check_min_ndim("wave", wave, 1, "(C, N) or (N,)")
        check_finite("wave", wave.float())
        mono = wave.float().reshape(-1, wave.shape[-1]).mean(0).to(self.device)  # (N,)
        if sample_rate != SAMPLE_RATE:
            mono = AF.resample(mono, sample_rate, SAMPLE_RATE)
        mono = mono / mono.abs().max().clamp_min(1e-12) if mono.abs().max() > 0 else mono
        window = torch.hann_window(N_FFT, device=self.device)
        stft = torch.stft(mono, N_FFT, HOP, window=window, center=True, pad_mode="constant", return_complex=True)
        power = stft.abs().square().T @ self.fb  # (frames, 96)
        return torch.log10(power * 1e4 + 1.0) / SPEC_MAX

    @staticmethod
    def blocks(spec: torch.Tensor) -> torch.Tensor:
        """(frames, 96) → (num_blocks, 100, 96): hop 50, last partial block dropped, short input zero-padded."""
        frames = spec.shape[0]
        if frames <= BLOCK:
            return F.pad(spec, (0, 0, 0, BLOCK - frames)).unsqueeze(0)
        return spec.unfold(0, BLOCK, BLOCK_HOP).transpose(1, 2)  # (n, 100, 96)

    @torch.no_grad()
    def __call__(self, wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
        blocks = self.blocks(self.spectrogram(wave, sample_rate))
        return torch.cat([self.net(b) for b in blocks.split(self.batch_size)]).float().cpu()  # (n, 512)


def fad(
    generated: Iterable[torch.Tensor],
    reference: Iterable[torch.Tensor],
    *,
    sample_rate: int,
    embedder: AisfxEmbedder | None = None,
) -> float:
    """Fréchet Audio Distance between two sets of waveforms (C, N) at ``sample_rate``, aiSFX embeddings.

    Every ~2.3 s block of every clip is one sample (as VGGish-FAD uses every frame).
    """
    embedder = embedder or AisfxEmbedder()
    stats = []
    for name, waves in (("generated", generated), ("reference", reference)):
        acc = FrechetStats(EMBED_DIM, name=f"{name} audio embeddings")
        for w in waves:
            acc.update(embedder(w, sample_rate))
        stats.append(acc.compute())
    return frechet_distance(stats[0], stats[1])
