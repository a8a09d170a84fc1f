import pytest
import torch

from avtok.generator.ovi.text import EmbeddingCache, combined_prompt, minilm_encoder, t5_encoder


def test_combined_prompt_tags():
    p = combined_prompt("A drummer on stage.", speech="one two three", audio_caption="loud drums, crowd")
    assert p == "A drummer on stage. <S>one two three<E> <AUDCAP>loud drums, crowd<ENDAUDCAP>"
    assert combined_prompt("waves") == "waves"


@pytest.fixture(scope="module")
def minilm():
    return minilm_encoder()


class Counting:
    def __init__(self, inner):
        self.inner, self.name, self.dim, self.calls = inner, inner.name, inner.dim, 0

    def encode(self, prompts):
        self.calls += 1
        return self.inner.encode(prompts)


def test_minilm_embeddings_are_semantic_and_masked(minilm):
    out = minilm.encode(["a dog barks", "a puppy is barking loudly", "stock prices fell sharply today"])
    assert out.embeddings.shape[0] == 3 and out.embeddings.shape[-1] == 384 == minilm.dim
    assert out.mask.sum(1).tolist()[0] < out.mask.shape[1]  # the short prompt is padded
    assert bool((out.embeddings[~out.mask] == 0).all())
    pooled = torch.nn.functional.normalize((out.embeddings.sum(1) / out.mask.sum(1, keepdim=True)), dim=-1)
    sim = pooled @ pooled.T
    assert sim[0, 1] > sim[0, 2] + 0.2  # the real sentence model, not random features


def test_cache_round_trip_computes_each_prompt_once(minilm, tmp_path):
    enc = Counting(minilm)
    cache = EmbeddingCache(tmp_path, enc)
    first = cache.get(["a dog barks", "rain"])
    again = cache.get(["rain", "a dog barks"])
    assert enc.calls == 1
    torch.testing.assert_close(again.embeddings[1, again.mask[1]], first.embeddings[0, first.mask[0]])
    direct = minilm.encode(["a dog barks"])
    torch.testing.assert_close(first.embeddings[0, first.mask[0]], direct.embeddings[0, direct.mask[0]])
    offline = EmbeddingCache(tmp_path, None, encoder_name=minilm.name)
    assert offline.get(["rain"]).embeddings.shape[-1] == 384
    with pytest.raises(FileNotFoundError, match="not cached"):
        offline.get(["snow"])


def test_t5_needs_a_local_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        t5_encoder(tmp_path / "umt5-xxl")
