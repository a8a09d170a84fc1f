"""AVClip: one decoded audio-video clip with its timing, the unit passed between avtok packages."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from avtok.media_io.errors import MediaError


def _check_video(video: torch.Tensor, where: str) -> None:
    if not isinstance(video, torch.Tensor) or video.dtype != torch.uint8:
        kind = getattr(video, "dtype", type(video).__name__)
        raise MediaError(
            f"{where}.video must be a uint8 torch.Tensor (T,H,W,3), got {kind}; "
            "fix: use AVClip.from_float for float frames in [-1, 1]"
        )
    if video.ndim != 4 or video.shape[-1] != 3 or min(video.shape[:3]) < 1:
        raise MediaError(
            f"{where}.video must have shape (T,H,W,3) with T,H,W >= 1, got {tuple(video.shape)}; "
            "fix: permute channels last (video.permute(0, 2, 3, 1)) or add a time axis"
        )


def _check_audio(audio: torch.Tensor, where: str) -> None:
    if not isinstance(audio, torch.Tensor) or audio.dtype != torch.float32:
        kind = getattr(audio, "dtype", type(audio).__name__)
        raise MediaError(
            f"{where}.audio must be a float32 torch.Tensor (C,N), got {kind}; fix: audio.float()"
        )
    if audio.ndim != 2 or audio.shape[0] < 1:
        raise MediaError(
            f"{where}.audio must have shape (C,N) with C >= 1, got {tuple(audio.shape)}; "
            "fix: audio.unsqueeze(0) for mono"
        )
    if audio.numel():
        low, high = torch.aminmax(audio)  # one pass, no temporary (clips can hold minutes of audio)
        if not (bool(low >= -1.0 - 1e-4) and bool(high <= 1.0 + 1e-4)):
            raise MediaError(
                f"{where}.audio must be finite and in [-1, 1] (range {low:.4g}..{high:.4g}); "
                "fix: audio.clamp(-1, 1) or rescale it"
            )


@dataclass(kw_only=True)
class AVClip:
    """A clip: uint8 RGB frames plus float audio, both starting at ``start`` seconds of ``source``.

    ``video`` is (T, H, W, 3) uint8, ``audio`` is (C, N) float32 in [-1, 1]. A clip read by
    :func:`avtok.media_io.read_clip` has ``N == round(T / fps * sample_rate)``: the audio covers the
    same span as the frames (silent files carry zeros).
    """

    video: torch.Tensor  # (T, H, W, 3) uint8
    fps: float
    audio: torch.Tensor  # (C, N) float32 in [-1, 1]
    sample_rate: int
    start: float = 0.0
    source: str | None = None

    def __post_init__(self) -> None:
        where = f"AVClip({self.source})" if self.source else "AVClip"
        _check_video(self.video, where)
        _check_audio(self.audio, where)
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and self.fps > 0):
            raise MediaError(f"{where}.fps must be a positive finite number, got {self.fps!r}")
        if (
            isinstance(self.sample_rate, bool)
            or not isinstance(self.sample_rate, int)
            or self.sample_rate <= 0
        ):
            raise MediaError(
                f"{where}.sample_rate must be a positive int, got {self.sample_rate!r}; "
                "fix: pass int(sample_rate)"
            )
        if not math.isfinite(self.start) or self.start < 0:
            raise MediaError(f"{where}.start must be a finite time >= 0 in seconds, got {self.start!r}")
        self.fps = float(self.fps)
        self.start = float(self.start)

    @property
    def num_frames(self) -> int:
        return int(self.video.shape[0])

    @property
    def height(self) -> int:
        return int(self.video.shape[1])

    @property
    def width(self) -> int:
        return int(self.video.shape[2])

    @property
    def channels(self) -> int:
        return int(self.audio.shape[0])

    @property
    def duration(self) -> float:
        """Video duration T / fps in seconds."""
        return self.num_frames / self.fps

    @property
    def audio_duration(self) -> float:
        """Audio duration N / sample_rate in seconds."""
        return self.audio.shape[1] / self.sample_rate

    def frames(self, t0: int, t1: int) -> AVClip:
        """Frames ``t0 .. t1 - 1`` with the audio samples of their span (``round(t * sample_rate / fps)``
        boundaries, so consecutive spans tile the audio exactly); ``start`` moves by ``t0 / fps``."""
        if not 0 <= t0 < t1 <= self.num_frames:
            raise MediaError(
                f"AVClip({self.source}).frames({t0}, {t1}): need 0 <= t0 < t1 <= {self.num_frames} "
                "(the clip's frame count)"
            )
        spf = self.sample_rate / self.fps
        return AVClip(
            video=self.video[t0:t1],
            audio=self.audio[:, round(t0 * spf) : round(t1 * spf)],
            fps=self.fps,
            sample_rate=self.sample_rate,
            start=self.start + t0 / self.fps,
            source=self.source,
        )

    def video_float(self) -> torch.Tensor:
        """Frames as float32 in [-1, 1], shape (T, H, W, 3)."""
        return self.video.to(torch.float32).div_(127.5).sub_(1.0)

    @classmethod
    def from_float(
        cls,
        *,
        video: torch.Tensor,
        audio: torch.Tensor,
        fps: float,
        sample_rate: int,
        start: float = 0.0,
        source: str | None = None,
    ) -> AVClip:
        """Build a clip from float frames in [-1, 1] (T, H, W, 3) and float audio (C, N).

        Frames are rounded to the nearest uint8 level, so ``from_float(video=c.video_float(), ...)``
        returns ``c.video`` exactly; values outside [-1, 1] are clamped.
        """
        if not isinstance(video, torch.Tensor) or not video.is_floating_point():
            raise MediaError(
                "AVClip.from_float: video must be a float tensor (T,H,W,3) in [-1, 1]; "
                "fix: use AVClip(video=...) for uint8 frames"
            )
        frames = ((video.detach().float().clamp(-1.0, 1.0) + 1.0) * 127.5).round_().to(torch.uint8)
        return cls(
            video=frames,
            audio=audio.detach().to(torch.float32).clamp(-1.0, 1.0),
            fps=fps,
            sample_rate=sample_rate,
            start=start,
            source=source,
        )
