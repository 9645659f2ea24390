"""Constrained decoding (separators and copies of the input text) on the tiny tokenizer/model."""
from functools import lru_cache

import pytest
import torch

from spacy_el4ner.finetune.format import SEPARATORS, build_messages, format_prompt, parse_answer
from spacy_el4ner.models.constrained import SubstringAutomaton, candidate_tokens, substring_processor, token_bytes

TEXT = "Barack Obama visited Paris and London last year."


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tok(tiny_llm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llm_path)


@pytest.fixture(scope="module")
def model(tiny_llm_path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_llm_path, torch_dtype=torch.float32).eval()


# -- an independent (brute-force) reference for the language ------------------------------------
def segmentable(s: str, text: str, seps=SEPARATORS, partial: bool = False) -> bool:
    """Can ``s`` be cut into separators and substrings of ``text``, never two substrings in a
    row? With ``partial``, the last piece may also be an unfinished separator."""

    @lru_cache(maxsize=None)
    def rest_ok(i: int, after_text: bool) -> bool:
        if i == len(s):
            return True
        rest = s[i:]
        for sep in seps:
            if rest.startswith(sep) and rest_ok(i + len(sep), False):
                return True
            if partial and sep.startswith(rest):
                return True
        if not after_text:
            return any(s[i:j] in text and rest_ok(j, True) for j in range(len(s), i, -1))
        return False

    return rest_ok(0, False)


def may_end(s: str, text: str) -> bool:
    """EOS is allowed: nothing generated yet, or the output ends with a complete separator."""
    return s == "" or any(s.endswith(sep) and segmentable(s[: -len(sep)], text) for sep in SEPARATORS)


def allowed_ids(proc, prompt_ids, generated_ids, vocab_size):
    ids = torch.tensor([prompt_ids + generated_ids])
    scores = proc(ids, torch.zeros(1, vocab_size))
    return {i for i, v in enumerate(scores[0].tolist()) if v != float("-inf")}


def prompt_ids(tok, text=TEXT, label="LOC"):
    return tok(format_prompt(tok, build_messages(text, label)), add_special_tokens=False)["input_ids"]


def test_reference_checker():
    assert segmentable("<<< Paris >>>\n<<< London >>>", TEXT)
    assert segmentable("<<< >>>", TEXT)
    assert not segmentable("<<< Paris London >>>", TEXT)
    assert segmentable("<<< Pa", TEXT, partial=True) and segmentable("<<< Pa", TEXT)
    assert segmentable("<<< Paris >", TEXT, partial=True) and not segmentable("<<< Paris >", TEXT)
    assert not segmentable("<<< Berlin", TEXT, partial=True)
    assert may_end("<<< Paris >>>", TEXT) and not may_end("<<< Paris", TEXT)


@pytest.mark.parametrize("generated", ["", "<<< ", "<<< Pa", "<<< Paris", "<<< Paris >", "<<< Paris >>>", "<<< Paris >>>\n"])
def test_processor_allows_exactly_the_valid_tokens(tok, generated):
    """Every token is allowed iff the output stays a valid prefix (checked for the whole vocab)."""
    prompt = prompt_ids(tok)
    proc = substring_processor(tok, TEXT, SEPARATORS, prompt_length=len(prompt))
    gen = tok(generated, add_special_tokens=False)["input_ids"] if generated else []
    assert tok.decode(gen) == generated
    allowed = allowed_ids(proc, prompt, gen, len(tok))
    special = set(tok.all_special_ids)
    n_allowed = 0
    for tid in range(len(tok)):
        piece = tok.decode([tid])
        if tid in special:
            expected = tid == tok.eos_token_id and may_end(generated, TEXT)
        elif "\ufffd" in piece:  # a lone byte of a multi-byte character: not in this ASCII text
            expected = False
        else:
            expected = segmentable(generated + piece, TEXT, partial=True)
        assert (tid in allowed) == expected, (generated, piece)
        n_allowed += expected
    assert 0 < n_allowed < len(tok) // 2


def test_eos_only_at_a_boundary(tok):
    prompt = prompt_ids(tok)
    proc = substring_processor(tok, TEXT, SEPARATORS, prompt_length=len(prompt))
    eos = tok.eos_token_id
    for generated, ok in [("", True), ("<<< Paris", False), ("<<< Paris >>>", True), ("<<< >>>", True), ("<<<", False)]:
        gen = tok(generated, add_special_tokens=False)["input_ids"]
        assert (eos in allowed_ids(proc, prompt, gen, len(tok))) == ok, generated
    # after EOS, only EOS
    gen = tok("<<< Paris >>>", add_special_tokens=False)["input_ids"] + [eos]
    assert allowed_ids(proc, prompt, gen, len(tok)) == {eos}
    # eos_in_text: also right after a text piece
    loose = substring_processor(tok, TEXT, SEPARATORS, eos_in_text=True, prompt_length=len(prompt))
    assert eos in allowed_ids(loose, prompt, tok("<<< Paris", add_special_tokens=False)["input_ids"], len(tok))


def test_generation_stays_in_the_language(tok, model):
    texts = [TEXT, "Microsoft and Google compete in Seattle."]
    prompts = [prompt_ids(tok, t) for t in texts]
    width = max(len(p) for p in prompts)
    pad = tok.pad_token_id
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    kwargs = dict(input_ids=ids, attention_mask=mask, max_new_tokens=40, do_sample=False, pad_token_id=pad)
    with torch.no_grad():
        free = model.generate(**kwargs)
        from transformers import LogitsProcessorList

        proc = substring_processor(tok, texts, SEPARATORS)
        constrained = model.generate(**kwargs, eos_token_id=tok.eos_token_id, logits_processor=LogitsProcessorList([proc]))
    assert proc.prompt_length == width
    for row, text in enumerate(texts):
        out = constrained[row, width:].tolist()
        if tok.eos_token_id in out:
            out = out[: out.index(tok.eos_token_id)]
            assert may_end(tok.decode(out), text)
        answer = tok.decode(out, skip_special_tokens=True)
        assert answer.strip(), "the constrained answer is not empty"
        assert segmentable(answer, text, partial=True), answer
        for mention in parse_answer(answer):
            assert mention in text
        # the random model on its own writes text outside the language
        assert not segmentable(tok.decode(free[row, width:].tolist(), skip_special_tokens=True), text, partial=True)


def test_generate_answers_helper_constrained(tok, model):
    from spacy_el4ner.finetune.generate import generate_answers

    texts = [TEXT, "The Nile flows north through Egypt."]
    prompts = [format_prompt(tok, build_messages(t, "LOC")) for t in texts]
    answers = generate_answers(model, tok, prompts, max_new_tokens=24, batch_size=2, constrain_to=texts)
    for answer, text in zip(answers, texts):
        assert segmentable(answer, text, partial=True), answer


def test_candidates_and_bytes(tok):
    table = token_bytes(tok)
    assert table[tok.eos_token_id] is None and token_bytes(tok) is table
    cands = candidate_tokens(tok, TEXT, SEPARATORS)
    assert candidate_tokens(tok, TEXT, SEPARATORS) is cands
    for tid in tok("<<< Paris >>>\n<<< London >>>", add_special_tokens=False)["input_ids"]:
        assert tid in cands
    assert all(table[t] is not None for t in cands)
    with pytest.raises(ValueError):
        substring_processor(tok, TEXT, [])


def test_automaton_works_on_bytes():
    text = "Zürich liegt am See."
    auto = SubstringAutomaton(text.encode("utf-8"), [s.encode("utf-8") for s in SEPARATORS])
    states = auto.advance(auto.start, "<<< Z".encode("utf-8") + "ü".encode("utf-8")[:1])  # half a character
    assert states
    states = auto.advance(states, "ü".encode("utf-8")[1:] + b"rich >>>")
    assert auto.at_boundary(states)
    assert not auto.advance(auto.start, "<<< Zurich".encode("utf-8"))
    assert not auto.advance(auto.start, b"<<< See liegt")
