"""read_clip: PyAV decoding with seeking, frame-rate resampling, resizing and audio resampling.

Everything heavy runs in FFmpeg's C code: frames are scaled and converted to RGB by swscale only
when a target frame needs them, audio is resampled and mixed down by
``av.AudioResampler`` (swresample), and the video decoder is multi-threaded (``thread_type="AUTO"``).

Timing model: times are seconds from the container start. Output frame ``i`` shows the source frame
nearest to ``start + i / fps`` (ties go to the later frame); the audio covers exactly
``[start, start + T / fps)``, i.e. ``round(T / fps * sample_rate)`` samples beginning at sample
``round(start * sample_rate)``, so the audio and video spans agree to within one audio sample.
Audio missing at the edges (a stream that starts late, or ends up to 0.25 s early) is filled with
silence; more missing audio is an error. A seeked read returns the same frames and samples as a
decode from the start (tested per container).

Long reads (more than 64 output frames) convert frames on a helper thread and decode the audio on a
second thread with its own demuxer, so they overlap with the video decoding (measured ~15% faster on
the shared 2-core box); short reads (dataset windows) stay on the calling thread.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from avtok.media_io.audio_stream import (
    SEEK_MARGIN,
    AudioCollector,
    SeekMiss,
    check_span,
    collect_audio,
    decode_packet,
    make_collector,
)
from avtok.media_io.clip import AVClip
from avtok.media_io.errors import MediaError, TruncatedMediaError
from avtok.media_io.probe import container_duration, container_origin, open_container, scan_duration
from avtok.media_io.pyav import av  # imported on first use (decoding / encoding only)
from avtok.media_io.tar_member import TarMember, media_path

log = logging.getLogger("avtok.media_io")

SILENT_SAMPLE_RATE = 22050  # silent audio rate when the file has none and sample_rate is not given
_MAX_SIDE = 8192
_END_SLACK = 0.1  # seconds a requested span may run past the last frame (headers overstate durations)
_AUDIO_END_SLACK = 0.25  # seconds of missing audio at a clip's end filled with silence rather than an error
_BATCH_FRAMES = 32  # selected frames handed to the conversion thread at once
_INLINE_FRAMES = 64  # reads of at most this many frames convert inline (no helper thread)
_LIGHT_DECODE = 4  # source pixels per output pixel up to which decoding counts as light (see _make_sampler)
_TRUNCATION_SLACK = 0.5  # seconds a whole-file read may end before the header's video duration unwarned

ResizeMode = Literal["resize", "crop"]


def _normalize_size(size: tuple[int, int] | int | None, path: Path) -> tuple[int, int] | None:
    if size is None:
        return None
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or not all(isinstance(s, (int, np.integer)) and 1 <= s <= _MAX_SIDE for s in hw):
        raise MediaError(
            f"size must be an int or (H, W) of ints in [1, {_MAX_SIDE}], got {size!r}; "
            "fix: e.g. size=(128, 128)",
            path=path,
        )
    return int(hw[0]), int(hw[1])


@dataclass
class _FrameConverter:
    """Source frame -> (H, W, 3) uint8 at the requested size (swscale resize, optional centre crop).

    ``VideoReformatter``s are reused so swscale contexts are built once, not per frame (building one
    costs more than converting a small frame). Shrinking uses swscale's area filter (no aliasing),
    enlarging bilinear. Scaling and RGB conversion are one swscale pass (with PyAV 18 on the 60 s
    benchmark clip ~15 % faster than scaling in YUV and converting in a second pass).
    """

    src_hw: tuple[int, int]
    size: tuple[int, int] | None
    mode: ResizeMode

    def __post_init__(self) -> None:
        from av.video.reformatter import Interpolation, VideoReformatter  # PyAV only once media is decoded

        h, w = self.src_hw
        self._reformatter = VideoReformatter()
        if self.size is None:
            self.scaled, self.crop = (h, w), (0, 0)
        elif self.mode == "resize":
            self.scaled, self.crop = self.size, (0, 0)
        else:
            th, tw = self.size
            scale = max(th / h, tw / w)  # cover the target, then cut the centre
            sh, sw = max(th, round(h * scale)), max(tw, round(w * scale))
            self.scaled, self.crop = (sh, sw), ((sh - th) // 2, (sw - tw) // 2)
        shrink = self.scaled[0] < h or self.scaled[1] < w
        self.interpolation = Interpolation.AREA if shrink else Interpolation.BILINEAR
        self.out_hw = self.size or (h, w)

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        sh, sw = self.scaled
        if (sh, sw) == self.src_hw:
            rgb = self._reformatter.reformat(frame, format="rgb24").to_ndarray()  # (sh, sw, 3) uint8
        else:
            rgb = self._reformatter.reformat(
                frame, width=sw, height=sh, format="rgb24", interpolation=self.interpolation
            ).to_ndarray()
        top, left = self.crop
        return rgb[top : top + self.out_hw[0], left : left + self.out_hw[1]]


@dataclass
class _FrameSampler:
    """Nearest-frame resampling to target times ``start + i / fps`` (midpoint rule between frames).

    A frame is converted only when selected, straight into a preallocated (capacity, H, W, 3) buffer.
    Long reads hand batches of selected frames to one helper thread (swscale runs without the GIL), so
    conversion overlaps demuxing and decoding; short reads (dataset windows) convert inline.
    """

    start: float
    fps: float
    src_period: float
    limit: int | None  # number of output frames, None = until the stream ends
    capacity: int  # expected number of output frames (the buffer grows if a header understated it)
    convert: _FrameConverter
    pool: ThreadPoolExecutor | None = None
    count: int = 0
    _buffer: np.ndarray = field(init=False)
    _prev: tuple[float, av.VideoFrame] | None = None
    _batch: list[list] = field(default_factory=list)  # [frame, first output index, repeats]
    _futures: list[Future] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Touch the whole buffer now, before the decoder's threads start: faulting its pages in one by one
        # while they run made read_clip ~1.4x slower on the shared 2-core box (60 s clip, 70 MB).
        self._buffer = np.zeros((max(self.capacity, 1), *self.convert.out_hw, 3), np.uint8)
        self._buffer.fill(0)

    @property
    def full(self) -> bool:
        return self.limit is not None and self.count >= self.limit

    @property
    def frames(self) -> np.ndarray:
        """(count, H, W, 3) uint8 output; call :meth:`wait` first."""
        return self._buffer[: self.count]

    def _convert_batch(self, batch: list[list], buffer: np.ndarray) -> None:
        for frame, first, repeats in batch:
            buffer[first : first + repeats] = self.convert(frame)

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if self.pool is None:
            self._convert_batch(batch, self._buffer)
        elif batch:
            self._futures.append(self.pool.submit(self._convert_batch, batch, self._buffer))

    def wait(self) -> None:
        """Convert what is pending and wait for the helper thread (re-raising its errors)."""
        self._flush()
        futures, self._futures = self._futures, []
        for future in futures:
            future.result()

    def _append(self) -> None:
        if self.count == len(self._buffer):
            self.wait()  # nothing may write into the old buffer while it is replaced
            self._buffer = np.concatenate([self._buffer, np.empty_like(self._buffer)])
        frame = self._prev[1]
        if self._batch and self._batch[-1][0] is frame:
            self._batch[-1][2] += 1  # the same source frame again (output fps > source fps)
        else:
            self._batch.append([frame, self.count, 1])
            if len(self._batch) >= _BATCH_FRAMES:
                self._flush()
        self.count += 1

    def _emit_prev_until(self, t_end: float) -> None:
        while not self.full and self.start + self.count / self.fps < t_end - 1e-9:
            self._append()

    def push(self, ts: float | None, frame: av.VideoFrame) -> None:
        if ts is None:  # no timestamp: assume constant rate after the previous frame
            ts = self._prev[0] + self.src_period if self._prev else 0.0
        if self._prev is not None:
            self._emit_prev_until((self._prev[0] + ts) / 2)
        self._prev = (ts, frame)

    def finish(self) -> None:
        """End of stream: the last frame lasts one source period (plus _END_SLACK when a length was asked)."""
        if self._prev is not None:
            slack = _END_SLACK if self.limit is not None else 0.0
            self._emit_prev_until(self._prev[0] + self.src_period + slack)


def _decode(container, vstream, astream, sampler, audio, start: float, origin: float, seek: bool) -> None:
    """Demux once, feeding video frames to `sampler` and audio frames to `audio` until both are done."""
    seek = seek and start > SEEK_MARGIN
    if seek:
        container.seek(int((origin + start - SEEK_MARGIN) * av.time_base), backward=True)
    streams = [s for s in (vstream, astream) if s is not None]
    video_done, checked, state = vstream is None, not seek, {"bad": 0}
    for packet in container.demux(streams):
        if packet.stream is vstream and not video_done:
            for frame in decode_packet(packet, state, seek):
                ts = None if frame.time is None else frame.time - origin
                if not checked:
                    if ts is not None and ts > start + sampler.src_period / 2:
                        raise SeekMiss
                    checked = True
                sampler.push(ts, frame)
            video_done = sampler.full
        elif packet.stream is astream and audio is not None and not audio.done:
            for frame in decode_packet(packet, state, seek):
                audio.push(frame)
        if video_done and (audio is None or audio.done):
            break
    else:  # all packets read (demux's final empty packets already flushed the decoders)
        if not video_done:
            sampler.finish()
        if audio is not None:
            audio.push(None)  # flush the resampler


def _frame_limit(path: Path, duration: float | None, fps: float) -> int | None:
    if duration is None:
        return None
    limit = math.floor(duration * fps + 1e-6)
    if limit < 1:
        raise MediaError(
            f"duration={duration:g} s is shorter than one frame at {fps:g} fps; "
            f"fix: pass duration >= {1 / fps:.4g}",
            path=path,
        )
    return limit


def _source_fps(path: Path, vstream) -> float:
    rate = vstream.average_rate or vstream.guessed_rate or vstream.base_rate
    if not rate:
        raise MediaError("video stream has no frame rate; fix: pass fps=... explicitly", path=path)
    return float(rate)


def read_clip(
    path: str | Path | TarMember,
    *,
    start: float = 0.0,
    duration: float | None = None,
    fps: float | None = None,
    size: tuple[int, int] | int | None = None,
    resize_mode: ResizeMode = "resize",
    sample_rate: int | None = None,
    channels: int | None = None,
    allow_silent: bool = False,
) -> AVClip:
    """Decode ``[start, start + duration)`` of a file into an :class:`AVClip`.

    Args:
        start, duration: seconds from the container start; ``duration=None`` reads to the end.
        fps: output frame rate (nearest-frame resampling); None keeps the stream's average rate.
        size: output (H, W) (an int means square); None keeps the source size.
        resize_mode: "resize" scales to size (aspect may change); "crop" scales to cover size keeping
            the aspect ratio, then cuts the centre.
        sample_rate, channels: output audio rate and channel count (None keeps the source's);
            swresample mixes channels down with the standard downmix matrix.
        allow_silent: for files without audio, return zeros (``channels or 1`` channels at
            ``sample_rate or 22050`` Hz) instead of raising.

    A whole-file read (``duration=None``) of a file whose audio track ends early keeps the common span
    (the video is cut where the audio ends, logged), and warns when the video ends more than 0.5 s
    before its header says (truncated file), with both numbers. A read of an explicit span that the
    file cannot fill raises :class:`TruncatedMediaError` (video) or MediaError (audio).
    """
    path = media_path(path)
    if resize_mode not in ("resize", "crop"):
        raise MediaError(f"resize_mode={resize_mode!r}; fix: use 'resize' or 'crop'", path=path)
    out_size = _normalize_size(size, path)
    if fps is not None and (not math.isfinite(fps) or fps <= 0):
        raise MediaError(f"fps={fps!r}; fix: pass a positive frame rate or None", path=path)
    for seek in (True, False):
        try:
            return _read(
                path,
                start,
                duration,
                fps,
                out_size,
                resize_mode,
                sample_rate,
                channels,
                allow_silent,
                seek=seek,
            )
        except SeekMiss:
            continue
        except av.error.FFmpegError as exc:
            raise MediaError(f"cannot read ({exc}); fix: re-encode or remove the file", path=path) from exc
    raise AssertionError("unreachable: reading without seeking never raises SeekMiss")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _make_sampler(path: Path, vstream, start, duration, total, fps, size, mode) -> _FrameSampler:
    vstream.thread_type = "AUTO"  # frame + slice threaded decoding
    src_fps = _source_fps(path, vstream)
    out_fps = float(fps or src_fps)
    ctx = vstream.codec_context
    if not ctx.width or not ctx.height:
        raise MediaError(
            "video stream has no frame size (damaged header); fix: re-encode the file", path=path
        )
    limit = _frame_limit(path, duration, out_fps)
    capacity = limit if limit is not None else math.ceil(((total or 0.0) - start) * out_fps) + 1
    pool = ThreadPoolExecutor(1, "avtok-swscale") if capacity > _INLINE_FRAMES else None
    convert = _FrameConverter((ctx.height, ctx.width), size, mode)
    out_h, out_w = convert.out_hw
    if pool is not None and ctx.height * ctx.width <= _LIGHT_DECODE * out_h * out_w:
        # Decoding costs about as much as converting: the conversion thread takes a core, the decoder
        # gets the others (2-core box, 176x144 -> 128x128: ~7 % faster than FFmpeg's automatic count,
        # which oversubscribes). Larger sources keep FFmpeg's count: there decoding dominates.
        ctx.thread_count = max(1, _cores() - 1)
    return _FrameSampler(
        pool=pool,
        start=start,
        fps=out_fps,
        src_period=1.0 / src_fps,
        limit=limit,
        capacity=capacity,
        convert=convert,
    )


def _read(path, start, duration, fps, size, mode, sample_rate, channels, allow_silent, *, seek) -> AVClip:
    with open_container(path) as container:
        origin, total = container_origin(container), container_duration(container)
        if total is None:
            total = scan_duration(container)
        check_span(path, start, duration, total)
        if not container.streams.video:
            raise MediaError("has no video stream; fix: use read_audio for audio-only files", path=path)
        astream = container.streams.audio[0] if container.streams.audio else None
        if astream is None and not allow_silent:
            raise MediaError(
                "has no audio stream; fix: pass allow_silent=True to get silent audio", path=path
            )
        vstream = container.streams.video[0]
        claimed = _video_seconds(vstream, container, origin, total)
        sampler = _make_sampler(path, vstream, start, duration, total, fps, size, mode)
        seconds = None if sampler.limit is None else sampler.limit / sampler.fps
        audio, audio_pool = None, None
        if astream is not None and sampler.pool is not None:  # long read: audio on its own thread
            audio_pool = ThreadPoolExecutor(1, "avtok-audio")
            audio = audio_pool.submit(_collect_audio_job, path, start, seconds, sample_rate, channels)
        elif astream is not None:
            audio = make_collector(path, astream, origin, sample_rate, channels)
            if seconds is not None:
                audio.stop_sample = round(start * audio.sample_rate) + round(seconds * audio.sample_rate)
        try:
            if audio_pool is None:
                _decode(container, vstream, astream, sampler, audio, start, origin, seek)
            else:
                _decode(container, vstream, None, sampler, None, start, origin, seek)
            sampler.wait()
            audio = audio.result() if audio_pool is not None else audio
        except (av.error.FFmpegError, ValueError) as exc:
            raise MediaError(
                f"decoding failed ({exc}); the file is damaged or truncated; fix: re-encode or remove it",
                path=path,
            ) from exc
        finally:
            for pool in (sampler.pool, audio_pool):
                if pool is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
        return _assemble(path, sampler, audio, start, claimed, sample_rate, channels)


def _video_seconds(vstream, container, origin: float, total: float | None) -> float:
    """The video's end (seconds from the container start) as the header states it."""
    if vstream.duration is not None and vstream.time_base is not None:
        begin = 0.0 if vstream.start_time is None else float(vstream.start_time * vstream.time_base) - origin
        return begin + float(vstream.duration * vstream.time_base)
    return float(total or 0.0)


def _collect_audio_job(path, start, seconds, sample_rate, channels) -> AudioCollector:
    return collect_audio(path, start=start, seconds=seconds, sample_rate=sample_rate, channels=channels)


def _assemble(
    path, sampler: _FrameSampler, audio: AudioCollector | None, start, claimed, sample_rate, channels
):
    fps = sampler.fps
    got = sampler.count
    if got == 0 or (sampler.limit is not None and got < sampler.limit):
        end = start + got / fps
        raise TruncatedMediaError(
            f"video ends at {end:.3f} s but {start:g}+{(sampler.limit or 1) / fps:g} s was requested "
            f"(the header says {claimed:.3f} s: truncated or damaged file, or span past the end); fix: "
            "shorten duration, or re-encode/remove the file",
            path=path,
            ends_at=end,
            claimed=claimed,
        )
    if sampler.limit is None and claimed - (start + got / fps) > _TRUNCATION_SLACK:
        warnings.warn(
            f"{path}: truncated? the video ends at {start + got / fps:.3f} s but its header says "
            f"{claimed:.3f} s; using the {got / fps:.3f} s that decode",
            stacklevel=3,
        )
    if audio is None:
        sr, ch = int(sample_rate or SILENT_SAMPLE_RATE), int(channels or 1)
        wave = np.zeros((ch, round(got / fps * sr)), np.float32)
    else:
        sr = audio.sample_rate
        begin, length = round(start * sr), round(got / fps * sr)
        audio_end = (audio.first or 0) + audio.count
        if begin + length - audio_end > _AUDIO_END_SLACK * sr and sampler.limit is None:
            got = _common_span(path, got, start, fps, audio_end / sr)
            length = round(got / fps * sr)
        if begin + length - audio_end > _AUDIO_END_SLACK * sr:
            raise MediaError(
                f"audio ends at {audio_end / sr:.3f} s, before the requested end "
                f"{(begin + length) / sr:.3f} s (truncated file or short audio track); fix: shorten "
                "duration, or re-encode/remove the file",
                path=path,
            )
        wave = audio.span(begin, length)
    video = torch.from_numpy(sampler.frames[:got])  # (T, H, W, 3) uint8
    return AVClip(
        video=video,
        fps=fps,
        audio=torch.from_numpy(wave),
        sample_rate=sr,
        start=float(start),
        source=str(path),
    )


def _common_span(path, got: int, start: float, fps: float, audio_end: float) -> int:
    """Frames of a whole-file read that the audio covers (the audio track ends before the video)."""
    keep = math.floor((audio_end - start) * fps + 1e-6)
    if keep < 1:
        raise MediaError(
            f"the audio ends at {audio_end:.3f} s, before the first frame at {start:g} s; fix: "
            "pass allow_silent with a file without audio, or re-encode it",
            path=path,
        )
    log.info(
        "%s: audio ends at %.3f s, %.3f s before the video; keeping the common span (%d of %d frames)",
        path, audio_end, start + got / fps - audio_end, keep, got,
    )
    return keep
