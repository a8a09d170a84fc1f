"""Behaviour contracts the evaluation drivers accept: any model satisfying them is scored the same way.

avtok.eval never imports avtok.tokenizer or avtok.generator; a model (ours or a peer's) only has to
provide these methods.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from avtok.media_io import AVClip

__all__ = ["Reconstructor", "Tokenizer", "Generator", "TokenizerReconstructor", "token_indices"]


@runtime_checkable
class Reconstructor(Protocol):
    """Clip in, clip of the same size out (a tokenizer round trip, a codec, or a baseline)."""

    name: str

    def reconstruct(self, clip: AVClip) -> AVClip: ...


@runtime_checkable
class Tokenizer(Protocol):
    """Encoder/decoder pair; ``encode`` may return any token object (``.indices`` enables token stats)."""

    def encode(self, clip: AVClip) -> Any: ...

    def decode(self, tokens: Any) -> AVClip: ...


@runtime_checkable
class Generator(Protocol):
    """Produces clips; keyword arguments (prompts, conditioning clips, seeds) are model-specific."""

    def sample(self, num_samples: int, **kwargs: Any) -> list[AVClip]: ...


def token_indices(tokens: Any) -> torch.Tensor | None:
    """The integer code indices of an encode() result: its ``.indices``, or the tensor itself."""
    idx = getattr(tokens, "indices", tokens)
    if torch.is_tensor(idx) and not idx.is_floating_point() and not idx.is_complex():
        return idx
    return None


class TokenizerReconstructor:
    """Adapter: a ``Tokenizer`` (encode/decode) as a ``Reconstructor`` that also exposes its tokens.

    After each ``reconstruct`` call, ``last_indices`` holds the integer indices of that clip's tokens
    (None for continuous latents), which the driver feeds to codebook statistics.
    """

    def __init__(self, tokenizer: Tokenizer, *, name: str | None = None) -> None:
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(
                f"tokenizer: {type(tokenizer).__name__} lacks encode(clip) / decode(tokens); "
                "implement both or wrap the model in a Reconstructor"
            )
        self.tokenizer = tokenizer
        self.name = name or type(tokenizer).__name__
        self.last_indices: torch.Tensor | None = None

    @torch.no_grad()
    def reconstruct(self, clip: AVClip) -> AVClip:
        tokens = self.tokenizer.encode(clip)
        self.last_indices = token_indices(tokens)
        return self.tokenizer.decode(tokens)
