"""The SentencePiece-BPE repair of tokenizers that the GGUF loader builds as Unigram (Gemma 3)."""
import json

import pytest
from tokenizers import Tokenizer, decoders, normalizers
from tokenizers.models import Unigram
from transformers import PreTrainedTokenizerFast

from spacy_el4ner.models import zoo
from spacy_el4ner.models.spm_bpe import merges_from_scores, repair_gguf_spm_tokenizer, unigram_to_bpe

# A BPE vocabulary written the way SentencePiece-BPE GGUF files write it: the score falls with the
# merge rank (Gemma 3: "Se" about -1,900, "Sentence" about -138,000), so a whole word that was merged
# late scores lower than the sum of its frequent pieces.
PIECES = [("<unk>", 0.0), ("<s>", 0.0), ("</s>", 0.0)]
PIECES += [(f"<0x{b:02X}>", 0.0) for b in range(256)]
PIECES += [
    (p, -float((i + 1) ** 3))
    for i, p in enumerate(
        ["▁", "S", "e", "n", "t", "c", "a", "b", "o", "u", "Se", "nt", "en", "ce", "▁a", "ab", "ou", "out",
         "▁ab", "Sent", "ence", "▁about", "Sentence", "en", "Sen"]
    )
]


def unigram_tokenizer() -> PreTrainedTokenizerFast:
    backend = Tokenizer(Unigram(PIECES, unk_id=0, byte_fallback=True))
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def test_unigram_splits_the_word_and_the_repair_does_not():
    broken = unigram_tokenizer()
    # The bug this module exists for: Unigram reads -rank as a log-probability.
    assert len(broken.tokenize("Sentence")) > 1
    fixed = repair_gguf_spm_tokenizer(broken)
    assert fixed.tokenize("Sentence") == ["Sentence"]
    assert fixed.tokenize("Sentence about") == ["Sentence", "▁about"]
    ids = fixed("Sentence about")["input_ids"]
    assert ids == [broken.convert_tokens_to_ids("Sentence"), broken.convert_tokens_to_ids("▁about")]
    assert fixed.decode(ids) == "Sentence about"


def test_unknown_characters_fall_back_to_bytes_and_round_trip():
    fixed = repair_gguf_spm_tokenizer(unigram_tokenizer())
    text = "Sé ü"
    tokens = fixed.tokenize(text)
    assert "<0xC3>" in tokens and "<0xA9>" in tokens  # é as its two UTF-8 bytes
    assert fixed.decode(fixed(text)["input_ids"]) == text


def test_merges_follow_the_merged_pieces_score():
    merges = merges_from_scores(PIECES)
    # "Se" is merged before "Sent" before "Sentence" (their scores fall in that order).
    order = {m: i for i, m in enumerate(merges)}
    assert order[("S", "e")] < order[("Se", "nt")] < order[("Sent", "ence")]
    # Every split of a piece into two known pieces is a merge, and nothing else is.
    assert ("Sen", "tence") not in order  # "tence" is not a piece
    assert all(a + b in dict(PIECES) for a, b in merges)


def test_duplicate_pieces_keep_the_first_id():
    data = json.loads(unigram_tokenizer().backend_tokenizer.to_str())
    fixed = unigram_to_bpe(data)
    first = [p for p, _ in PIECES].index("en")
    assert fixed["model"]["vocab"]["en"] == first
    assert fixed["model"]["type"] == "BPE" and fixed["model"]["byte_fallback"] is True
    assert fixed["normalizer"] == data["normalizer"]  # everything but the model is kept


def test_refuses_a_tokenizer_that_is_not_unigram():
    with pytest.raises(ValueError, match="Expected a Unigram"):
        unigram_to_bpe({"model": {"type": "BPE", "vocab": {}, "merges": []}})


def test_gemma_is_embedded_with_the_repair():
    spec = zoo.get_spec("gemma-3-270m")
    assert spec.tokenizer_repair == "spm-bpe"
    assert "Gemma Terms of Use" in spec.licence
    assert len(spec.files) == len(spec.packages) == 4
