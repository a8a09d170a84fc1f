"""umT5 text encoding as Ovi feeds the DiT: a tiny random UMT5 and a tokenizer trained here, saved to tmp_path."""

from __future__ import annotations

import pytest
import torch

from avtok.generator.ovi.umt5 import UMT5TextEncoder, clean_prompt, wan_t5_to_hf_keys

CORPUS = [
    "a cat plays the piano on a stage",
    "a man says hello and the crowd cheers",
    "rain falls on the roof while a dog barks",
    "speech audio caption music drums guitar",
]


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A transformers folder: WordLevel tokenizer (<pad> 0, </s> 1, <unk> 2; EOS appended) + random UMT5 encoder."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(CORPUS, trainers.WordLevelTrainer(special_tokens=["<pad>", "</s>", "<unk>"]))
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    folder = tmp_path_factory.mktemp("umt5")
    PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    ).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = UMT5Config(
        vocab_size=tok.get_vocab_size(),
        d_model=32,
        d_kv=8,
        d_ff=48,
        num_layers=2,
        num_heads=4,
        feed_forward_proj="gated-gelu",
        pad_token_id=0,
        eos_token_id=1,
    )
    UMT5EncoderModel(cfg).save_pretrained(folder)
    return folder


def test_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        UMT5TextEncoder(tmp_path / "nowhere")


def test_clean_prompt():
    assert clean_prompt("  a \n “cat”\t&amp;amp;  dog ") == 'a "cat" & dog'


def test_encode_pads_with_zero_rows_like_ovi(hf_folder):
    enc = UMT5TextEncoder(hf_folder)
    prompts = ["a cat plays the piano", "a   man says hello and the crowd cheers loudly", ""]
    out = enc.encode(prompts)
    assert out.embeddings.shape == (3, 512, enc.dim) and out.mask.shape == (3, 512)
    for i, p in enumerate(prompts):
        ids = enc.tokenizer(clean_prompt(p), return_tensors="pt")["input_ids"]  # unpadded, EOS appended
        n = ids.shape[1]
        assert ids[0, -1] == 1 and int(out.mask[i].sum()) == n
        with torch.no_grad():
            alone = enc.model(input_ids=ids).last_hidden_state[0]  # what Wan keeps: u[:n]
        assert torch.allclose(out.embeddings[i, :n], alone, rtol=1e-5, atol=1e-5)
        assert torch.count_nonzero(out.embeddings[i, n:]) == 0
        assert alone.abs().min() > 0  # real rows are not zero, so the zero rows are padding only


def test_truncates_to_text_len(hf_folder):
    enc = UMT5TextEncoder(hf_folder, text_len=8)
    out = enc.encode([" ".join(CORPUS)])
    assert out.embeddings.shape[1] == 8 and bool(out.mask.all())


def test_wan_checkpoint_layout(hf_folder, tmp_path):
    enc = UMT5TextEncoder(hf_folder)
    hf = enc.model.state_dict()
    # Wan's T5Encoder names (models_t5_umt5-xxl-enc-bf16.pth), written out independently of the renaming rules
    wan = {
        "token_embedding.weight": hf["shared.weight"],
        "norm.weight": hf["encoder.final_layer_norm.weight"],
    }
    for i in range(enc.model.config.num_layers):
        b = f"encoder.block.{i}.layer."
        wan.update(
            {
                f"blocks.{i}.norm1.weight": hf[b + "0.layer_norm.weight"],
                f"blocks.{i}.norm2.weight": hf[b + "1.layer_norm.weight"],
                f"blocks.{i}.pos_embedding.embedding.weight": hf[
                    b + "0.SelfAttention.relative_attention_bias.weight"
                ],
                f"blocks.{i}.ffn.gate.0.weight": hf[b + "1.DenseReluDense.wi_0.weight"],
                f"blocks.{i}.ffn.fc1.weight": hf[b + "1.DenseReluDense.wi_1.weight"],
                f"blocks.{i}.ffn.fc2.weight": hf[b + "1.DenseReluDense.wo.weight"],
                **{f"blocks.{i}.attn.{p}.weight": hf[b + f"0.SelfAttention.{p}.weight"] for p in "qkvo"},
            }
        )
    renamed = wan_t5_to_hf_keys(wan)
    assert set(renamed) == set(hf) and all(torch.equal(renamed[k], hf[k]) for k in hf)
    torch.save(wan, tmp_path / "models_t5_umt5-xxl-enc-bf16.pth")
    from_wan = UMT5TextEncoder(hf_folder, weights=tmp_path / "models_t5_umt5-xxl-enc-bf16.pth")
    prompts = ["a dog barks in the rain"]
    assert torch.equal(from_wan.encode(prompts).embeddings, enc.encode(prompts).embeddings)
    wan.pop("norm.weight")
    torch.save(wan, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match=r"1 missing \['encoder.final_layer_norm.weight'\]"):
        UMT5TextEncoder(hf_folder, weights=tmp_path / "broken.pth")
