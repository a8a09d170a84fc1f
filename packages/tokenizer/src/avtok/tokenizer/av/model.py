"""AVTok-style 1D unified audio-video tokenizer: one compact token sequence for a sounding video.

Encoder (one joint sequence, TiTok-style 1D tokenization)::

    [video patches ; audio patches ; video latent queries ; audio latent queries] → shared blocks
    → outputs at the latent-query positions → per-modality out norm → Linear(D, C) → FSQ → tokens

Decoder::

    [tokens → Linear(C, D) + token positions ; video patch queries ; audio patch queries] → shared blocks
    → outputs at the patch-query positions → per-modality out norm → Linear(D, patch) → video / mel

Fusion: both streams sit in ONE sequence, so every shared layer attends across modalities (AVTok's
"implicit fusion" through shared weights). Modality-specific: patch embeddings, latent queries, decoder
patch queries and token positions, the input and output LayerNorms, the patch heads. Shared: every
transformer block and the bottleneck (one unified FSQ codebook). Modality drop: an absent stream
contributes no tokens at all, so the same weights encode/decode video-only or audio-only input.

Positions (RoPE over ``(t, x, y, z)`` in every shared layer): video patches at ``(t, x, y, 0)``; audio
patches at ``(t_a, 0, 0, f)`` with mel band ``f`` on the otherwise unused z axis and time ``t_a``
converted to video latent-frame units (both streams share one clock, as Ovi scales audio RoPE); the 1D
latent queries / tokens sit at the origin — they have no place in the clip and get their identity from
learned vectors (encoder queries, decoder token positions).

Query start (``config.token_init``): ``"learned"`` queries are the same for every clip (TiTok / LARP;
the paper preset). ``"pooled"`` (tiny, small) adds to latent query ``i`` the mean patch embedding of
the ``i``-th slice of its stream's patch sequence, and to each decoder patch query the token embeddings
resampled the same way — a coarse start that makes the tokens input-dependent from step 0 without new
parameters or any path around the bottleneck.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from avtok.kernels import FSQ
from avtok.media_io import MelNormalizer, Patches, patchify, unpatchify
from avtok.tokenizer.av.config import MEL, AVTokenizerConfig, resolve_av_config
from avtok.tokenizer.av.heads import AlignHead, ARPrior, alignment_loss
from avtok.train.pretrained import register_model
from avtok.train.transformer import Transformer, TransformerConfig

__all__ = ["AVTokenizer", "AVTokenizerOutput", "AVReconstruction", "build_av_tokenizer", "MODALITIES"]

MODALITIES = ("video", "audio")  # token order in the unified sequence
MEL_DEFAULT_RANGE = (-11.5129, 2.5)  # log(1e-5) (HiFi-GAN's floor) .. a loud frame; refit with fit_mel_stats


@dataclass(kw_only=True)
class AVTokenizerOutput:
    """Tokens of a batch of B clips: video tokens first, then audio tokens (absent streams omitted).

    Not the visual tokenizer's ``TokenizerOutput``: that one describes packed *patch* tokens (per-token
    coords, per-sample ``PatchLayout``s, per-pixel ``valid`` masks); 1D tokens have no grid, and one
    sample carries two modalities with fixed token counts.

    - ``indices``: ``(B, N)`` int32 in ``[0, codebook_size)`` — the unified codebook index of each token.
    - ``codes``: ``(B, N, C)`` FSQ codes in [-1, 1] (the decoder input; straight-through gradient).
    - ``latents``: ``(B, N, C)`` fp32 continuous pre-quantization latents.
    - ``features``: ``(B, N, D)`` continuous tokens (encoder outputs at the latent queries, the REPA input).
    - ``modalities``: which streams the tokens hold, in order (``("video", "audio")``, or one of them).
    - ``counts``: tokens per modality, aligned with ``modalities``.
    Only ``indices`` + ``modalities`` + ``counts`` are needed to decode.
    """

    indices: Tensor | None
    codes: Tensor | None = None
    latents: Tensor | None = None
    features: Tensor | None = None
    modalities: tuple[str, ...]
    counts: tuple[int, ...]

    def split(self, tensor: Tensor) -> dict[str, Tensor]:
        """Split a ``(B, N, ...)`` tensor of this batch into ``{modality: (B, N_m, ...)}``."""
        parts = torch.split(tensor, list(self.counts), dim=1)
        return dict(zip(self.modalities, parts, strict=True))


@dataclass(kw_only=True)
class AVReconstruction:
    """Decoded streams: ``video (B, T, H, W, 3)`` in [-1, 1] and ``mel (B, 80, F)`` normalised log-mel in
    [-1, 1] (``AVTokenizer.denormalize_mel`` gives the log-mel); ``None`` where the stream is absent."""

    video: Tensor | None = None
    mel: Tensor | None = None


class _Stream(nn.Module):
    """Everything one modality owns: patch embed, latent queries, norms, patch queries, token positions."""

    def __init__(self, cfg: AVTokenizerConfig, *, patch_dim: int, patches: int, tokens: int) -> None:
        super().__init__()
        e, d = cfg.encoder, cfg.decoder
        self.patch_embed = nn.Linear(patch_dim, e.dim)
        self.latent_queries = nn.Parameter(torch.randn(tokens, e.dim) * 0.02)  # (N_m, D)
        self.enc_in_norm = nn.LayerNorm(e.dim, eps=e.norm_eps)
        self.enc_out_norm = nn.LayerNorm(e.dim, eps=e.norm_eps)
        self.token_pos = nn.Parameter(torch.randn(tokens, d.dim) * 0.02)  # (N_m, D)
        self.patch_queries = nn.Parameter(torch.randn(patches, d.dim) * 0.02)  # (L_m, D)
        self.dec_in_norm = nn.LayerNorm(d.dim, eps=d.norm_eps)
        self.dec_out_norm = nn.LayerNorm(d.dim, eps=d.norm_eps)
        self.to_patches = nn.Linear(d.dim, patch_dim)


def _shared_stack(cfg: TransformerConfig) -> Transformer:
    net = Transformer(cfg)
    net.norm = nn.Identity()  # the final LayerNorm is per modality (the streams' out norms)
    return net


class AVTokenizer(nn.Module):
    """Dual-stream 1D tokenizer with shared encoder/decoder blocks and one FSQ codebook."""

    kind = "avtok-av"

    def __init__(self, config: AVTokenizerConfig) -> None:
        super().__init__()
        self.config = c = config
        self.streams = nn.ModuleDict({
            "video": _Stream(c, patch_dim=c.video_patch_dim, patches=c.num_video_patches,
                             tokens=c.video_tokens),
            "audio": _Stream(c, patch_dim=c.audio_patch_dim, patches=c.num_audio_patches,
                             tokens=c.audio_tokens),
        })
        self.encoder = _shared_stack(c.encoder)
        self.to_latent = nn.Linear(c.encoder.dim, c.code_dim)
        self.fsq = FSQ(levels=c.fsq_levels, num_groups=1, backend=c.fsq_backend)
        self.from_latent = nn.Linear(c.code_dim, c.decoder.dim)
        self.decoder = _shared_stack(c.decoder)
        hidden = c.align_hidden or c.encoder.mlp_hidden
        self.align_head = AlignHead(c.encoder.dim, hidden, c.align_dim) if c.align_dim else None
        self.prior = (ARPrior(c.prior, code_dim=c.code_dim, codebook_size=c.codebook_size)
                      if c.prior is not None else None)
        # Mel normaliser statistics (media-io MelNormalizer, per bin): saved with the weights.
        self.register_buffer("mel_low", torch.full((c.n_mels,), MEL_DEFAULT_RANGE[0]))
        self.register_buffer("mel_high", torch.full((c.n_mels,), MEL_DEFAULT_RANGE[1]))
        for name, coords in _patch_coords(c).items():
            self.register_buffer(f"{name}_coords", coords, persistent=False)  # (L_m, 4) float

    # ----------------------------------------------------------------- mel normalisation
    def mel_normalizer(self) -> MelNormalizer:
        """The stored statistics as a media-io ``MelNormalizer`` (per-bin min/max → [-1, 1])."""
        return MelNormalizer(per_bin=True).load_state_dict(
            {"per_bin": True, "eps": 1e-3, "low": self.mel_low, "high": self.mel_high})

    def fit_mel_stats(self, mels: Tensor) -> None:
        """Fit the per-bin normaliser range on log-mels ``(..., 80, F)`` and store it in the buffers."""
        norm = self.mel_normalizer().fit(mels)
        self.mel_low.copy_(norm.low.flatten())
        self.mel_high.copy_(norm.high.flatten())

    def normalize_mel(self, log_mel: Tensor) -> Tensor:
        """Log-mel ``(..., 80, F)`` → [-1, 1] (clamped outside the fitted range)."""
        return self.mel_normalizer().normalize(log_mel)

    def denormalize_mel(self, mel: Tensor) -> Tensor:
        return self.mel_normalizer().denormalize(mel)

    # ----------------------------------------------------------------- encoder
    def encode(self, video: Tensor | None = None, mel: Tensor | None = None) -> AVTokenizerOutput:
        """Video ``(B, T, H, W, 3)`` in [-1, 1] and/or normalised mel ``(B, 80, F)`` → unified tokens."""
        inputs = self._check_inputs(video, mel)
        names = tuple(inputs)
        b = next(iter(inputs.values())).shape[0]
        ref = self.to_latent.weight
        parts, coords, embedded = [], [], {}
        for name, feats in inputs.items():  # patch tokens
            stream = self.streams[name]
            embedded[name] = stream.patch_embed(feats.to(ref.dtype))  # (B, L_m, D)
            parts.append(stream.enc_in_norm(embedded[name]))
            coords.append(getattr(self, f"{name}_coords"))
        for name in names:  # latent queries
            stream = self.streams[name]
            queries = stream.latent_queries  # (N_m, D); "pooled": + per-clip means -> (B, N_m, D)
            if self.config.token_init == "pooled":
                queries = queries + _resample(embedded[name], queries.shape[0])
            parts.append(stream.enc_in_norm(queries).expand(b, -1, -1))  # (B, N_m, D)
            coords.append(ref.new_zeros(stream.latent_queries.shape[0], 4))
        with self._autocast(ref):
            h = self.encoder(torch.cat(parts, dim=1), torch.cat(coords))  # (B, L, D)
        counts = tuple(self.streams[n].latent_queries.shape[0] for n in names)
        start = sum(p.shape[1] for p in parts[: len(names)])
        feats = []
        for name, n in zip(names, counts, strict=True):
            feats.append(self.streams[name].enc_out_norm(h[:, start:start + n].float()))  # (B, N_m, D)
            start += n
        features = torch.cat(feats, dim=1)  # (B, N, D)
        with torch.autocast(ref.device.type, enabled=False):  # the latent space stays fp32
            latents = self.to_latent(features.float())  # (B, N, C)
        q = self.fsq(latents)
        return AVTokenizerOutput(indices=q.indices[..., 0], codes=q.codes, latents=latents,
                                 features=features, modalities=names, counts=counts)

    # ----------------------------------------------------------------- decoder
    def decode(self, tokens: AVTokenizerOutput) -> AVReconstruction:
        """Tokens (codes, or indices alone) → video ``(B, T, H, W, 3)`` and/or normalised mel."""
        codes = self.codes_of(tokens)  # (B, N, C)
        self._check_counts(tokens.modalities, tokens.counts, codes.shape[1])
        b = codes.shape[0]
        ref = self.from_latent.weight
        x = self.from_latent(codes.to(ref.dtype))  # (B, N, D)
        parts, coords = [], []
        per_stream = dict(zip(tokens.modalities, torch.split(x, list(tokens.counts), dim=1), strict=True))
        for name, z in per_stream.items():
            stream = self.streams[name]
            parts.append(stream.dec_in_norm(z + stream.token_pos))  # (B, N_m, D)
            coords.append(ref.new_zeros(z.shape[1], 4))
        for name, z in per_stream.items():
            stream = self.streams[name]
            queries = stream.patch_queries  # (L_m, D); "pooled": + resampled tokens -> (B, L_m, D)
            if self.config.token_init == "pooled":
                queries = queries + _resample(z, queries.shape[0])
            parts.append(stream.dec_in_norm(queries).expand(b, -1, -1))  # (B, L_m, D)
            coords.append(getattr(self, f"{name}_coords"))
        with self._autocast(ref):
            h = self.decoder(torch.cat(parts, dim=1), torch.cat(coords))  # (B, L, D)
        start, out = codes.shape[1], {}
        for name in tokens.modalities:
            stream = self.streams[name]
            n = stream.patch_queries.shape[0]
            patches = stream.to_patches(stream.dec_out_norm(h[:, start:start + n].float()))  # (B, L_m, P)
            out[name] = self._unpatchify(name, patches)
            start += n
        return AVReconstruction(video=out.get("video"), mel=out.get("audio"))

    def codes_of(self, tokens: AVTokenizerOutput) -> Tensor:
        """The decoder input: ``tokens.codes``, else codes rebuilt from ``tokens.indices``."""
        if tokens.codes is not None:
            return tokens.codes
        if tokens.indices is None:
            raise ValueError("AVTokenizerOutput has neither codes nor indices; keep one of them to decode")
        return self.fsq.indices_to_codes(tokens.indices.unsqueeze(-1))  # (B, N, C)

    def decode_indices(self, indices: Tensor, modalities: tuple[str, ...] = MODALITIES) -> AVReconstruction:
        """``(B, N)`` unified indices of the given streams (video first) → decoded streams."""
        counts = tuple(self.streams[m].latent_queries.shape[0] for m in self._check_modalities(modalities))
        return self.decode(AVTokenizerOutput(indices=indices, modalities=tuple(modalities), counts=counts))

    def forward(self, video: Tensor | None = None, mel: Tensor | None = None
                ) -> tuple[AVTokenizerOutput, AVReconstruction]:
        """Encode then decode: ``(tokens, reconstruction)``."""
        tokens = self.encode(video, mel)
        return tokens, self.decode(tokens)

    # ----------------------------------------------------------------- training hooks
    def align_projection(self, tokens: AVTokenizerOutput) -> Tensor:
        """Continuous tokens projected to the frozen feature width: ``(B, N, align_dim)``."""
        if self.align_head is None:
            raise ValueError("this AV tokenizer has no alignment head; build it with align_dim=<feature dim>")
        if tokens.features is None:
            raise ValueError("tokens.features is None; pass the output of encode() (not indices only)")
        return self.align_head(tokens.features)

    def align_loss(self, tokens: AVTokenizerOutput, *, video: Tensor | None = None,
                   audio: Tensor | None = None) -> Tensor:
        """Sum over the given modalities of ``1 - cos`` between projected tokens and frozen features
        (``(B, F)`` clip features or ``(B, N_m, F)`` per-token features)."""
        targets = {k: v for k, v in (("video", video), ("audio", audio)) if v is not None}
        if not targets:
            raise ValueError("align_loss: pass video= and/or audio= features of the frozen network")
        proj = tokens.split(self.align_projection(tokens))
        missing = set(targets) - set(proj)
        if missing:
            raise ValueError(f"align_loss: features given for {sorted(missing)} but the tokens hold only "
                             f"{list(tokens.modalities)}; encode that stream or drop its features")
        return sum(alignment_loss(proj[k], t, name=k) for k, t in targets.items())

    def prior_logits(self, tokens: AVTokenizerOutput) -> Tensor:
        """AR prior's next-token logits ``(B, N, codebook_size)`` for the token sequence."""
        if self.prior is None:
            raise ValueError("this AV tokenizer has no AR prior; build it with prior=TransformerConfig(...)")
        codes = self.codes_of(tokens)
        return self.prior(codes, self.token_positions(tokens.modalities).to(codes.device))

    def token_positions(self, modalities: tuple[str, ...]) -> Tensor:
        """Position of each token in the joint sequence (video ``0..Nv-1``, audio ``Nv..``): ``(N,)``."""
        c = self.config
        offsets = {"video": (0, c.video_tokens), "audio": (c.video_tokens, c.audio_tokens)}
        return torch.cat([torch.arange(a, a + n) for a, n in (offsets[m] for m in modalities)])

    # ----------------------------------------------------------------- helpers
    def patchify_video(self, video: Tensor) -> Tensor:
        """``(B, T, H, W, 3)`` → ``(B, L_v, t·p·p·3)`` with media-io's patchify."""
        return torch.stack([patchify(v, patch=self.config.video_patch).features for v in video])

    def patchify_mel(self, mel: Tensor) -> Tensor:
        """``(B, 80, F)`` → ``(B, L_a, pm·pf)``: the mel patchified like a grayscale image."""
        return torch.stack([patchify(m, patch=(1, *self.config.audio_patch)).features for m in mel])

    def _unpatchify(self, name: str, patches: Tensor) -> Tensor:
        c = self.config
        if name == "video":
            layout = dict(grid=c.video_grid, patch=c.video_patch, modality="video",
                          shape=(c.frames, c.height, c.width, 3))
        else:
            layout = dict(grid=c.audio_grid, patch=(1, *c.audio_patch), modality="audio",
                          shape=(c.n_mels, c.mel_frames))
        empty = patches.new_empty(0)
        return torch.stack([unpatchify(Patches(features=p, coords=empty, valid=empty, **layout))
                            for p in patches])

    def _check_inputs(self, video: Tensor | None, mel: Tensor | None) -> dict[str, Tensor]:
        c, inputs = self.config, {}
        if video is not None:
            want = (c.frames, c.height, c.width, 3)
            if video.ndim != 5 or tuple(video.shape[1:]) != want or not video.is_floating_point():
                raise ValueError(f"video: expected float (B, {', '.join(map(str, want))}) in [-1, 1], got "
                                 f"{video.dtype} {tuple(video.shape)}; fix: read clips with "
                                 f"read_clip(..., fps={c.fps:.4g}, size=({c.height}, {c.width})) or use "
                                 "encode_clips()")
            inputs["video"] = self.patchify_video(video)
        if mel is not None:
            want = (c.n_mels, c.mel_frames)
            if mel.ndim != 3 or tuple(mel.shape[1:]) != want or not mel.is_floating_point():
                raise ValueError(f"mel: expected float (B, {want[0]}, {want[1]}) normalised log-mel, got "
                                 f"{mel.dtype} {tuple(mel.shape)}; fix: normalize_mel(log_mel(wave)) of "
                                 f"{c.num_samples} samples at 22.05 kHz, or use encode_clips()")
            inputs["audio"] = self.patchify_mel(mel)
        if not inputs:
            raise ValueError("encode: both video and mel are None; pass at least one stream")
        if video is not None and mel is not None and video.shape[0] != mel.shape[0]:
            raise ValueError(f"video batch {video.shape[0]} != mel batch {mel.shape[0]}; pass paired clips")
        return inputs

    def _check_modalities(self, modalities: tuple[str, ...]) -> tuple[str, ...]:
        if not modalities or tuple(m for m in MODALITIES if m in modalities) != tuple(modalities):
            raise ValueError(f"modalities={modalities!r}: use ('video', 'audio'), ('video',) or ('audio',)")
        return tuple(modalities)

    def _check_counts(self, modalities: tuple[str, ...], counts: tuple[int, ...], n: int) -> None:
        want = tuple(self.streams[m].latent_queries.shape[0] for m in self._check_modalities(modalities))
        if tuple(counts) != want or sum(want) != n:
            raise ValueError(f"tokens: {n} tokens with counts {tuple(counts)} for {modalities}, but this "
                             f"model expects counts {want}; fix: decode tokens produced by this config")

    def _autocast(self, x: Tensor) -> AbstractContextManager:
        if x.device.type == "cuda" and self.config.autocast_bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def parts(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by role, for staged training (VFAL: video stream + shared blocks first, then the
        audio stream, then the decoder side): ``video``, ``audio`` (the streams' own modules),
        ``encoder``, ``decoder`` (shared blocks), ``bottleneck``, ``align``, ``prior``."""
        modules = {"video": [self.streams["video"]], "audio": [self.streams["audio"]],
                   "encoder": [self.encoder], "decoder": [self.decoder],
                   "bottleneck": [self.to_latent, self.from_latent],
                   "align": [self.align_head] if self.align_head is not None else [],
                   "prior": [self.prior] if self.prior is not None else []}
        return {k: [p for m in ms for p in m.parameters()] for k, ms in modules.items()}


def _resample(x: Tensor, n: int) -> Tensor:
    """``(B, L, D)`` → ``(B, n, D)``: output ``i`` averages the ``i``-th equal slice of the sequence
    (adaptive average pooling; repeats entries when ``n > L``). The ``"pooled"`` query start."""
    return nn.functional.adaptive_avg_pool1d(x.transpose(1, 2), n).transpose(1, 2)


def _patch_coords(c: AVTokenizerConfig) -> dict[str, Tensor]:
    """RoPE coordinates ``(L_m, 4)`` float: video ``(t, x, y, 0)``, audio ``(t_a, 0, 0, f)``."""
    gt, gh, gw = c.video_grid
    t, y, x = torch.meshgrid(torch.arange(gt), torch.arange(gh), torch.arange(gw), indexing="ij")
    video = torch.stack([t, x, y, torch.zeros_like(t)], dim=-1).reshape(-1, 4).float()
    _, gf, gc = c.audio_grid
    f, col = torch.meshgrid(torch.arange(gf), torch.arange(gc), indexing="ij")  # media-io order: rows, cols
    seconds_per_col = c.audio_patch[1] * MEL.hop_length / MEL.sample_rate
    seconds_per_t = c.video_patch[0] / c.fps
    t_a = (col + 0.5) * seconds_per_col / seconds_per_t - 0.5  # centre of the column in latent frames
    zeros = torch.zeros_like(t_a)
    audio = torch.stack([t_a, zeros, zeros, f.float()], dim=-1).reshape(-1, 4).float()
    return {"video": video, "audio": audio}


def build_av_tokenizer(preset_or_config: str | AVTokenizerConfig) -> AVTokenizer:
    """``build_av_tokenizer("tiny")`` / ``("paper")`` or ``build_av_tokenizer(AVTokenizerConfig(...))``."""
    return AVTokenizer(resolve_av_config(preset_or_config))


register_model(AVTokenizer.kind, AVTokenizerConfig, AVTokenizer)
