"""Opening media files with clear errors, and probing their streams (MediaInfo)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from avtok.media_io.errors import MediaError
from avtok.media_io.pyav import av  # imported on first use (decoding / encoding only)
from avtok.media_io.tar_member import TarMember

# FFmpeg demuxers that accept almost any file (e.g. "tty" renders a .txt as ANSI art video).
_TEXT_DEMUXERS = frozenset({"tty", "ansi", "bin", "idf", "adf", "xbin"})


@dataclass(kw_only=True, frozen=True)
class MediaInfo:
    """What :func:`probe` learns from a file's header; times are seconds from the container start."""

    path: str
    duration: float  # container duration (s), the longest stream
    video_duration: float | None  # video stream duration (s) from its header, else the container's
    fps: float | None  # video average frame rate; None without video
    width: int | None
    height: int | None
    num_frames: int | None  # estimate round(video duration * fps); exact count needs a full decode
    has_video: bool
    has_audio: bool
    sample_rate: int | None
    channels: int | None
    video_codec: str | None = None
    audio_codec: str | None = None
    format_name: str = ""
    audio_duration: float | None = None  # audio stream duration (s) from its header, else None
    variable_rate: bool = False  # average frame rate differs from the nominal rate by more than 1 %


def check_file(path: str | Path | TarMember) -> Path | TarMember:
    """Path of an existing non-empty regular file (or a non-empty tar member), else MediaError."""
    if isinstance(path, TarMember):
        if path.size == 0:
            raise MediaError("tar member is empty (0 bytes); fix: re-write the shard", path=path)
        return path
    p = Path(path)
    if not p.exists():
        raise MediaError(
            f"file not found; fix: check the path (relative paths resolve against {Path.cwd()})", path=p
        )
    if not p.is_file():
        raise MediaError(
            "is not a regular file; fix: pass a media file (use WindowDataset for folders)", path=p
        )
    if p.stat().st_size == 0:
        raise MediaError("file is empty (0 bytes); fix: re-export the media or remove the file", path=p)
    return p


@contextmanager
def open_container(path: str | Path | TarMember) -> Iterator[av.container.InputContainer]:
    """Open a media file (or tar member) for reading, closing it on exit; non-media and unreadable
    files raise MediaError."""
    p = check_file(path)
    fh = p.open() if isinstance(p, TarMember) else None
    try:
        container = av.open(fh if fh is not None else str(p), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        if fh is not None:
            fh.close()
        raise MediaError(
            f"not a readable media file, or damaged/truncated ({exc.__class__.__name__}: {exc}); "
            "fix: pass an audio/video file FFmpeg can decode (mp4, mkv, webm, avi, mpg, wav, ...) "
            "or re-encode it",
            path=p,
        ) from exc
    if container.format.name in _TEXT_DEMUXERS:
        container.close()
        if fh is not None:
            fh.close()
        raise MediaError(
            f"not a media file (FFmpeg only matched the catch-all {container.format.name!r} "
            "demuxer); fix: pass an audio/video file",
            path=p,
        )
    try:
        with container:
            yield container
    finally:
        if fh is not None:
            fh.close()


def container_origin(container: av.container.InputContainer) -> float:
    """Container start time in seconds: every time in avtok.media_io is relative to it."""
    return 0.0 if container.start_time is None else container.start_time / av.time_base


def _stream_seconds(stream: av.stream.Stream) -> float | None:
    if stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def container_duration(container: av.container.InputContainer) -> float | None:
    """Duration in seconds from the header, falling back to the longest stream."""
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    times = [t for t in (_stream_seconds(s) for s in container.streams) if t]
    return max(times) if times else None


def scan_duration(container: av.container.InputContainer) -> float | None:
    """Duration by demuxing every packet (slow path for headers without a duration)."""
    origin, end = container_origin(container), None
    for packet in container.demux():
        if packet.pts is None or packet.time_base is None:
            continue
        t = float((packet.pts + (packet.duration or 0)) * packet.time_base) - origin
        end = t if end is None else max(end, t)
    container.seek(0)
    return end


def _variable_rate(video) -> bool:
    avg, nominal = video.average_rate, video.base_rate
    return bool(avg and nominal and abs(float(avg) / float(nominal) - 1.0) > 0.01)


def probe(path: str | Path | TarMember) -> MediaInfo:
    """Read a file's header: duration, video size and rate, audio rate and channels."""
    with open_container(path) as container:
        duration = container_duration(container)
        if duration is None:
            duration = scan_duration(container)
        if duration is None or duration <= 0:
            raise MediaError(
                "has no duration and no timestamped packets; fix: re-mux it "
                "(e.g. ffmpeg -i in -c copy out.mkv)",
                path=path,
            )
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        fps = float(video.average_rate or video.guessed_rate or 0) or None if video else None
        vdur = (_stream_seconds(video) or duration) if video else None
        return MediaInfo(
            path=str(path),
            duration=duration,
            fps=fps,
            video_duration=vdur,
            width=video.codec_context.width if video else None,
            height=video.codec_context.height if video else None,
            num_frames=round(vdur * fps) if (vdur and fps) else None,
            has_video=video is not None,
            has_audio=audio is not None,
            sample_rate=audio.codec_context.sample_rate if audio else None,
            channels=audio.codec_context.channels if audio else None,
            video_codec=video.codec_context.name if video else None,
            audio_codec=audio.codec_context.name if audio else None,
            format_name=container.format.name,
            audio_duration=_stream_seconds(audio) if audio else None,
            variable_rate=_variable_rate(video) if video else False,
        )
