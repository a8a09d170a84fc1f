"""avtok.media_io: clip I/O (PyAV), STFT/log-mel + vocoder, space-time patching, data sources and
streaming window datasets (raw media or pre-extracted tar shards)."""

from avtok.media_io.__about__ import __version__
from avtok.media_io.audio_stream import read_audio
from avtok.media_io.clip import AVClip
from avtok.media_io.datasets import WindowDataset, WindowLoader
from avtok.media_io.errors import MediaError, TruncatedMediaError
from avtok.media_io.patching import (
    PackedPatches,
    PaddedPatches,
    Patches,
    PatchLayout,
    pack,
    pad_batch,
    patchify,
    unpack,
    unpad_batch,
    unpatchify,
)
from avtok.media_io.probe import MediaInfo, probe
from avtok.media_io.reading import read_clip
from avtok.media_io.samples import list_samples, sample_path
from avtok.media_io.shards import write_shards
from avtok.media_io.sources import MediaItem, Source, WindowShard, list_media, parse_source, read_manifest
from avtok.media_io.spectral import MelConfig, MelNormalizer, log_mel, mel_basis, stft
from avtok.media_io.tar_member import TarMember
from avtok.media_io.vocoder import HifiGanVocoder, Vocoder, griffin_lim, load_vocoder, mel_to_wave
from avtok.media_io.window_plan import DataStats, WindowConfig
from avtok.media_io.windows import WindowBatch, WindowSample, collate_windows
from avtok.media_io.writing import write_clip

__all__ = [
    "DataStats",
    "MediaItem",
    "Source",
    "TarMember",
    "TruncatedMediaError",
    "WindowBatch",
    "WindowDataset",
    "WindowLoader",
    "WindowSample",
    "WindowShard",
    "collate_windows",
    "parse_source",
    "read_manifest",
    "write_shards",
    "AVClip",
    "HifiGanVocoder",
    "MediaError",
    "MediaInfo",
    "MelConfig",
    "MelNormalizer",
    "PackedPatches",
    "PaddedPatches",
    "PatchLayout",
    "Patches",
    "Vocoder",
    "WindowConfig",
    "__version__",
    "griffin_lim",
    "list_media",
    "list_samples",
    "load_vocoder",
    "log_mel",
    "mel_basis",
    "mel_to_wave",
    "pack",
    "pad_batch",
    "patchify",
    "probe",
    "read_audio",
    "read_clip",
    "sample_path",
    "stft",
    "unpack",
    "unpad_batch",
    "unpatchify",
    "write_clip",
]
