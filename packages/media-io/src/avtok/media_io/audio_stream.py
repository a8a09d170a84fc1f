"""Audio decoding: sample-exact placement of decoded audio, resampling/mix-down (swresample), read_audio."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from avtok.media_io.errors import MediaError
from avtok.media_io.probe import container_duration, container_origin, open_container
from avtok.media_io.pyav import av  # imported on first use (decoding / encoding only)
from avtok.media_io.tar_member import TarMember, media_path

SEEK_MARGIN = 1.0  # seconds decoded before `start`, so audio interleaved ahead of video is not missed
_MAX_BAD_PACKETS = 8  # undecodable packets tolerated (partial packets after a seek, a damaged tail)


class SeekMiss(Exception):
    """The demuxer landed after the requested start: decode again from the beginning."""


_ANCHOR_FRAMES = 32  # decoded audio frames whose timestamps vote for the position of the first sample
_MAX_ALIGN = 0.1  # seconds: longest input trim used to put resampled samples on the global output grid


def _trim_front(frame: av.AudioFrame, skip: int) -> av.AudioFrame:
    """Drop the first `skip` samples of a decoded frame (any sample format)."""
    data = frame.to_ndarray()  # planar: (C, n); packed: (1, n * C)
    step = 1 if frame.format.is_planar else len(frame.layout.channels)
    out = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(data[:, skip * step :]), format=frame.format.name, layout=frame.layout.name
    )
    out.sample_rate, out.time_base = frame.sample_rate, frame.time_base
    if frame.pts is not None:
        out.pts = frame.pts + round(skip / frame.sample_rate / frame.time_base)
    return out


@dataclass
class AudioCollector:
    """Decoded audio -> resampled chunks, plus the output-rate sample index of the first chunk.

    Decoders emit gap-free audio, so only the first sample's position is needed. It is the median of
    ``frame time * rate - samples so far`` over the first decoded frames, which cancels containers'
    timestamp rounding (Matroska stores milliseconds) and a mis-stamped first frame (Opus pre-skip).
    Before resampling, the input is trimmed to start on a time shared by both rates' sample grids (every
    20 ms for 22.05 <-> 16 kHz), so a clip read after a seek holds the very samples a full decode gives.
    """

    resampler: av.AudioResampler
    sample_rate: int
    channels: int
    origin: float
    stop_sample: int | None = None  # collecting may stop at this output sample index (None: to the end)
    chunks: list[np.ndarray] = field(default_factory=list)
    count: int = 0
    first: int | None = None  # output-rate index of chunks' first sample, set once the anchor is known
    _pending: list[av.AudioFrame] = field(default_factory=list)
    _votes: list[float] = field(default_factory=list)
    _in_count: int = 0

    @property
    def done(self) -> bool:
        return (
            self.stop_sample is not None
            and self.first is not None
            and self.first + self.count >= self.stop_sample
        )

    def push(self, frame: av.AudioFrame | None) -> None:
        if self.first is not None:
            self._resample(frame)
            return
        if frame is not None:
            if frame.time is not None:
                self._votes.append((frame.time - self.origin) * frame.sample_rate - self._in_count)
            self._in_count += frame.samples
            self._pending.append(frame)
        if frame is None or len(self._pending) >= _ANCHOR_FRAMES:
            self._start()
            if frame is None:
                self._resample(None)

    def _start(self) -> None:
        if not self._pending:
            return
        rate_in = self._pending[0].sample_rate
        first_in = round(float(np.median(self._votes))) if self._votes else 0
        period = rate_in // math.gcd(rate_in, self.sample_rate)
        skip = (-first_in) % period if period <= _MAX_ALIGN * rate_in else 0
        self.first = round((first_in + skip) * self.sample_rate / rate_in)
        pending, self._pending = self._pending, []
        for frame in pending:
            if skip >= frame.samples:
                skip -= frame.samples
                continue
            self._resample(_trim_front(frame, skip) if skip else frame)
            skip = 0

    def _resample(self, frame: av.AudioFrame | None) -> None:
        for out in self.resampler.resample(frame):
            data = out.to_ndarray()  # (C, n) float32 planar
            self.chunks.append(data)
            self.count += data.shape[1]

    def span(self, begin: int, length: int) -> np.ndarray:
        """Samples [begin, begin + length) as (channels, length), zeros where the stream has none."""
        out = np.zeros((self.channels, length), np.float32)
        if self.first is None or not self.chunks:
            return out
        buf = np.concatenate(self.chunks, axis=1)  # (C, count)
        lo, hi = max(begin, self.first), min(begin + length, self.first + self.count)
        if hi > lo:
            out[:, lo - begin : hi - begin] = buf[:, lo - self.first : hi - self.first]
        return np.clip(out, -1.0, 1.0, out=out)


def audio_layout(channels: int, path: Path) -> str:
    names = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
    if channels not in names:
        raise MediaError(
            f"channels must be in 1..8, got {channels!r}; fix: channels=1 (mono) or 2 (stereo)", path=path
        )
    return names[channels]


def check_span(path: Path, start: float, duration: float | None, total: float | None) -> None:
    if not isinstance(start, (int, float)) or not math.isfinite(start) or start < 0:
        raise MediaError(f"start={start!r} is invalid; fix: pass a start time >= 0 in seconds", path=path)
    if duration is not None and (not math.isfinite(duration) or duration <= 0):
        raise MediaError(
            f"duration={duration!r} is invalid; fix: pass a positive duration in seconds or None", path=path
        )
    if total is not None and start >= total:
        raise MediaError(
            f"start={start:g} s is at or beyond the end of the file ({total:.3f} s); "
            f"fix: pass start < {total:.3f}",
            path=path,
        )
    if total is not None and duration is not None and start + duration > total + 0.05:
        raise MediaError(
            f"requested span {start:g}..{start + duration:g} s runs past the end of the file "
            f"({total:.3f} s); fix: shorten duration or pass duration=None",
            path=path,
        )


def decode_packet(packet, state: dict, seek: bool) -> list:
    """Decode one packet; a few bad packets are skipped, a seek that breaks the decoder is retried."""
    try:
        return packet.decode()
    except av.error.FFmpegError:
        state["bad"] += 1
        if state["bad"] > _MAX_BAD_PACKETS:
            if seek:
                raise SeekMiss from None
            raise
        return []


def make_collector(
    path: Path, astream, origin: float, sample_rate: int | None, channels: int | None
) -> AudioCollector:
    """An AudioCollector resampling `astream` to sample_rate / channels (None keeps the source's)."""
    sr = int(sample_rate or astream.codec_context.sample_rate)
    layout = audio_layout(int(channels or astream.codec_context.channels), path)
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=sr)
    return AudioCollector(resampler, sr, av.AudioLayout(layout).nb_channels, origin)


def collect_audio(
    path: Path, *, start: float, seconds: float | None, sample_rate: int | None, channels: int | None
) -> AudioCollector:
    """Decode the first audio stream of `path` from `start` for `seconds` (None: to the end), on its own
    container, so that a long read can run it on a second thread beside the video decoding."""
    with open_container(path) as container:
        origin = container_origin(container)
        astream = container.streams.audio[0]
        audio = make_collector(path, astream, origin, sample_rate, channels)
        if seconds is not None:
            sr = audio.sample_rate
            audio.stop_sample = round(start * sr) + round(seconds * sr)
        if start > SEEK_MARGIN:
            container.seek(int((origin + start - SEEK_MARGIN) * av.time_base), backward=True)
        state = {"bad": 0}
        for packet in container.demux(astream):
            for frame in decode_packet(packet, state, seek=False):
                audio.push(frame)
            if audio.done:
                break
        else:
            audio.push(None)  # flush the resampler
    return audio


def read_audio(
    path: str | Path | TarMember,
    *,
    start: float = 0.0,
    duration: float | None = None,
    sample_rate: int | None = None,
    channels: int | None = None,
) -> tuple[torch.Tensor, int]:
    """Decode audio ``[start, start + duration)`` -> (wave (C, N) float32 in [-1, 1], sample_rate)."""
    path = media_path(path)
    with open_container(path) as container:
        check_span(path, start, duration, container_duration(container))
        if not container.streams.audio:
            raise MediaError("has no audio stream; fix: pass a file with audio", path=path)
    try:
        audio = collect_audio(path, start=start, seconds=duration, sample_rate=sample_rate, channels=channels)
    except av.error.FFmpegError as exc:
        raise MediaError(f"decoding failed ({exc}); fix: re-encode or remove the file", path=path) from exc
    if audio.first is None:
        raise MediaError("audio stream has no decodable samples; fix: re-encode the file", path=path)
    sr, begin = audio.sample_rate, round(start * audio.sample_rate)
    end = audio.stop_sample if audio.stop_sample is not None else audio.first + audio.count
    return torch.from_numpy(audio.span(begin, max(end - begin, 0))), sr
