"""Typed config, presets and closed-form parameter counts for the AVTok-style 1D audio-video tokenizer.

One clip window is ``frames`` video frames of ``height × width`` plus ``mel_frames`` log-mel frames of
HiFi-GAN's features (80 mels, hop 256 at 22.05 kHz). Both cover the same span: the video frame rate is
derived, ``fps = frames / seconds`` with ``seconds = mel_frames · 256 / 22050`` (paper: 16 frames over
the 4.46 s of an 80×384 mel → 3.59 fps).

Token budget (paper preset, 1152 = 768 + 384): AVTok reports 1152 tokens for 16×128×128 video plus an
80×384 mel but not the split. We give audio 384 tokens — what SpectralCodec, the audio-only row of
AVTok's table, spends on the same 80×384 mel — and video the remaining 768 (LARP spends 1024 on video
alone). One token = one latent query = one index of the unified FSQ codebook.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from avtok.media_io import MelConfig
from avtok.train.transformer import TransformerConfig, block_params

__all__ = [
    "AVTokenizerConfig",
    "AV_PRESETS",
    "resolve_av_config",
    "expected_av_num_params",
    "AVTOK_PAPER_PARAMS",
]

TOKEN_INITS = ("learned", "pooled")
MEL = MelConfig()  # HiFi-GAN universal vocoder features (media-io's defaults)
AVTOK_PAPER_PARAMS = 208_400_000  # AVTok's tokenizer size (generation table: 208.4M)


def _positive(name: str, values: tuple[int, ...]) -> None:
    if any(int(v) <= 0 for v in values):
        raise ValueError(f"AVTokenizerConfig.{name}={values}: every entry must be a positive int")


@dataclass(kw_only=True)
class AVTokenizerConfig:
    """Dual-stream 1D tokenizer: shared encoder/decoder blocks, per-modality queries, norms and heads.

    - ``video_patch`` ``(t, p, p)`` space-time patches of RGB video; ``audio_patch`` ``(mels, frames)``
      patches of the normalised log-mel, treated as a 1-channel image (media-io's ``patchify``).
    - ``video_tokens`` / ``audio_tokens``: latent queries (= discrete tokens) per modality.
    - ``fsq_levels``: one unified FSQ codebook of ``prod(levels)`` codes; each token is one index.
    - ``align_dim``: width of the caller's frozen feature network for the representation-alignment head
      (``None``: no head); ``align_hidden`` its MLP width (``None``: ``encoder.mlp_hidden``).
    - ``prior``: a small causal transformer over the token sequence (AR prior); ``None``: no prior.
    - ``token_init``: what the 1D query slots start from. ``"learned"`` (TiTok / LARP, the paper preset):
      encoder latent queries and decoder patch queries are input-independent learned vectors. ``"pooled"``
      (tiny, small): the encoder adds to latent query ``i`` the average of the patch embeddings in the
      ``i``-th equal slice of the patch sequence (raster order), and the decoder adds to each patch
      query the tokens resampled the same way. No parameters change and the decoder still sees nothing
      but the tokens; the tokens simply start input-dependent. Measured on the concert clip (video only,
      2000 steps, ``tools/probe_av_video.py``): held-out PSNR 20.70 vs 18.99 dB (tiny), 23.42 vs 18.65
      dB (small) — learned queries need thousands of steps to stop emitting nearly the same code for
      every window (see the package README).
      A config without the field (older checkpoints) loads as ``"learned"``, the behaviour it was
      trained with.
    """

    encoder: TransformerConfig
    decoder: TransformerConfig
    frames: int = 16
    height: int = 128
    width: int = 128
    mel_frames: int = 384
    video_patch: tuple[int, int, int] = (4, 8, 8)
    audio_patch: tuple[int, int] = (8, 8)
    video_tokens: int = 768
    audio_tokens: int = 384
    fsq_levels: tuple[int, ...] = (8, 8, 8, 6, 5)  # 15,360 codes (FSQ paper's ~2^14 level set)
    # kernels' FSQ backend; "auto" picks numba on CPU (numba.cuda / cupy on GPU). At ≤ 1152 tokens × 5
    # dims per clip the backend barely matters: the tiny train step costs the same with "auto" and
    # "torch" (tools/bench_av_tokenizer.py).
    fsq_backend: str = "auto"
    align_dim: int | None = None
    align_hidden: int | None = None
    prior: TransformerConfig | None = None
    autocast_bf16: bool = True  # bf16 autocast for the transformers on CUDA
    token_init: str = "learned"  # "learned" or "pooled" (see above)

    def __post_init__(self) -> None:
        _positive("frames/height/width/mel_frames", (self.frames, self.height, self.width, self.mel_frames))
        _positive("video_patch", tuple(self.video_patch))
        _positive("audio_patch", tuple(self.audio_patch))
        _positive("video_tokens/audio_tokens", (self.video_tokens, self.audio_tokens))
        if len(self.video_patch) != 3 or len(self.audio_patch) != 2:
            raise ValueError(f"AVTokenizerConfig: video_patch={self.video_patch} must be (t, p, p) and "
                             f"audio_patch={self.audio_patch} must be (mels, frames)")
        if not self.fsq_levels or any(v < 2 for v in self.fsq_levels):
            raise ValueError(f"AVTokenizerConfig.fsq_levels={self.fsq_levels}: need levels >= 2, e.g. "
                             "(8, 8, 8, 6, 5)")
        if self.token_init not in TOKEN_INITS:
            raise ValueError(f"AVTokenizerConfig.token_init={self.token_init!r}: use one of {TOKEN_INITS}")

    # ------------------------------------------------------------------ derived sizes
    @property
    def seconds(self) -> float:
        """Span of one window: the mel's duration (the video frames are spread over the same span)."""
        return self.mel_frames * MEL.hop_length / MEL.sample_rate

    @property
    def fps(self) -> float:
        return self.frames / self.seconds

    @property
    def num_samples(self) -> int:
        """Waveform samples at 22.05 kHz behind ``mel_frames`` frames."""
        return self.mel_frames * MEL.hop_length

    @property
    def n_mels(self) -> int:
        return MEL.n_mels

    @property
    def video_grid(self) -> tuple[int, int, int]:
        sizes = (self.frames, self.height, self.width)
        return tuple(-(-n // p) for n, p in zip(sizes, self.video_patch, strict=True))  # type: ignore[return-value]

    @property
    def audio_grid(self) -> tuple[int, int, int]:
        ph, pw = self.audio_patch
        return (1, -(-self.n_mels // ph), -(-self.mel_frames // pw))

    @property
    def video_patch_dim(self) -> int:
        t, ph, pw = self.video_patch
        return t * ph * pw * 3

    @property
    def audio_patch_dim(self) -> int:
        return self.audio_patch[0] * self.audio_patch[1]

    @property
    def num_video_patches(self) -> int:
        gt, gh, gw = self.video_grid
        return gt * gh * gw

    @property
    def num_audio_patches(self) -> int:
        _, gh, gw = self.audio_grid
        return gh * gw

    @property
    def num_tokens(self) -> int:
        return self.video_tokens + self.audio_tokens

    @property
    def code_dim(self) -> int:
        return len(self.fsq_levels)

    @property
    def codebook_size(self) -> int:
        size = 1
        for level in self.fsq_levels:
            size *= level
        return size


def _tiny() -> AVTokenizerConfig:
    # 8 frames 32×32 + an 80×48 mel (0.56 s at 22.05 kHz, 14.4 fps): ~150 tokens per sequence on CPU.
    enc = TransformerConfig(dim=64, depth=2, heads=4, mlp_hidden=256)
    dec = TransformerConfig(dim=64, depth=2, heads=4, mlp_hidden=256)
    prior = TransformerConfig(dim=32, depth=1, heads=2, mlp_hidden=64)
    return AVTokenizerConfig(encoder=enc, decoder=dec, frames=8, height=32, width=32, mel_frames=48,
                             video_patch=(4, 8, 8), audio_patch=(8, 8), video_tokens=32, audio_tokens=16,
                             fsq_levels=(8, 5, 5, 5), align_dim=32, prior=prior, token_init="pooled")


def _small() -> AVTokenizerConfig:
    # tiny's window, blocks and codebook with 4x the video tokens: 4×4×4 patches (128), one token per
    # patch. ~2.5x tiny's step cost; +1.1 to +2.3 dB held-out video PSNR in the 20-min evidence over three
    # seeds (package README).
    return dataclasses.replace(_tiny(), video_patch=(4, 4, 4), video_tokens=128)


def _paper() -> AVTokenizerConfig:
    # ViT-B width (768, 12 heads, MLP 3072); 13 encoder + 16 decoder blocks lands at AVTok's 208.4M
    # (decoder-heavy like TiTok/LARP). Training heads are optional and off here (not in the 208.4M).
    enc = TransformerConfig(dim=768, depth=13, heads=12, mlp_hidden=3072)
    dec = TransformerConfig(dim=768, depth=16, heads=12, mlp_hidden=3072)
    return AVTokenizerConfig(encoder=enc, decoder=dec)


_BUILDERS = {"tiny": _tiny, "small": _small, "paper": _paper}
AV_PRESETS: dict[str, AVTokenizerConfig] = {name: build() for name, build in _BUILDERS.items()}


def resolve_av_config(preset_or_config: str | AVTokenizerConfig) -> AVTokenizerConfig:
    """A preset name (a fresh copy, safe to edit) or a config → a config."""
    if isinstance(preset_or_config, AVTokenizerConfig):
        return preset_or_config
    if preset_or_config not in _BUILDERS:
        raise ValueError(f"unknown AV tokenizer preset {preset_or_config!r}; choose one of "
                         f"{sorted(_BUILDERS)} or pass an AVTokenizerConfig")
    return _BUILDERS[preset_or_config]()


def _stream_params(cfg: AVTokenizerConfig, patch_dim: int, patches: int, tokens: int) -> int:
    e, d = cfg.encoder.dim, cfg.decoder.dim
    encoder_side = patch_dim * e + e + tokens * e + 2 * (2 * e)  # embed, latent queries, in/out norms
    decoder_side = tokens * d + patches * d + 2 * (2 * d) + d * patch_dim + patch_dim  # + patch head
    return encoder_side + decoder_side


def expected_av_num_params(cfg: AVTokenizerConfig) -> dict[str, int]:
    """Closed-form parameter counts per part; ``tokenizer`` = what inference uses (AVTok's 208.4M)."""
    e, d, c = cfg.encoder, cfg.decoder, cfg.code_dim
    counts = {
        "video_stream": _stream_params(cfg, cfg.video_patch_dim, cfg.num_video_patches, cfg.video_tokens),
        "audio_stream": _stream_params(cfg, cfg.audio_patch_dim, cfg.num_audio_patches, cfg.audio_tokens),
        # shared blocks (the stack's final LayerNorm is replaced by the per-modality out norms)
        "encoder": e.depth * block_params(e),
        "decoder": d.depth * block_params(d),
        "bottleneck": (e.dim * c + c) + (c * d.dim + d.dim),
    }
    counts["tokenizer"] = sum(counts.values())
    hidden = cfg.align_hidden or e.mlp_hidden
    counts["align"] = 0 if cfg.align_dim is None else (e.dim * hidden + hidden + hidden * cfg.align_dim
                                                       + cfg.align_dim)
    p = cfg.prior
    counts["prior"] = 0 if p is None else (c * p.dim + p.dim + p.dim + p.depth * block_params(p)
                                           + 2 * p.dim + p.dim * cfg.codebook_size + cfg.codebook_size)
    counts["total"] = counts["tokenizer"] + counts["align"] + counts["prior"]
    return counts
