"""Repair of SentencePiece-BPE tokenizers that transformers' GGUF loader converts as Unigram.

transformers 4.53.2 turns a Gemma 3 GGUF tokenizer (``tokenizer.ggml.model = "llama"``, scores
that rank BPE merges) into a *Unigram* model. Unigram reads the scores as log-probabilities, so a
whole word such as "Sentence" (score about -138,000) loses to four frequent pieces "Se" "nt" "en"
"ce": the model then sees text cut in a way it never saw in training (on a news paragraph:
166 tokens and 5.5 nats per token, against 67 tokens and 3.6 nats per token when repaired).

The repair keeps everything the loader got right (vocabulary and ids, special tokens, the
normalizer, the decoder, the post-processor) and swaps only the model for a byte-fallback BPE
whose merges come from the scores the way SentencePiece applies them: a pair is merged when the
merged piece is in the vocabulary, higher-scored merged pieces first.
"""
import json
import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import Errors

logger = logging.getLogger("spacy_el4ner")


def first_ids(pieces: Sequence[Tuple[str, float]]) -> Tuple[Dict[str, int], int]:
    """RETURNS (Tuple[Dict[str, int], int]): piece -> its first id, and how many duplicate pieces
    (later ids of a piece already seen) were left out."""
    vocab: Dict[str, int] = {}
    duplicates = 0
    for i, (piece, _score) in enumerate(pieces):
        if piece in vocab:
            duplicates += 1
            continue
        vocab[piece] = i
    return vocab, duplicates


def merges_from_scores(
    pieces: Sequence[Tuple[str, float]], vocab: Optional[Dict[str, int]] = None
) -> List[Tuple[str, str]]:
    """Derive BPE merges from a SentencePiece vocabulary with scores.

    pieces (Sequence[Tuple[str, float]]): (piece, score) in id order.
    vocab (Optional[Dict[str, int]]): ``first_ids(pieces)[0]``, when the caller has it already.
    RETURNS (List[Tuple[str, str]]): Merges, highest-priority first: every split (left, right) of
        a piece whose halves are both in the vocabulary, ordered by the merged piece's score
        (descending), then by the merged piece's id and the halves' ids.
    """
    if vocab is None:
        vocab = first_ids(pieces)[0]
    ranked: List[Tuple[float, int, int, int, str, str]] = []
    for piece, i in vocab.items():
        score = pieces[i][1]
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in vocab and right in vocab:
                ranked.append((-score, i, vocab[left], vocab[right], left, right))
    ranked.sort()
    return [(m[4], m[5]) for m in ranked]


def unigram_to_bpe(tokenizer_json: Dict[str, Any]) -> Dict[str, Any]:
    """Return a copy of a ``tokenizers`` JSON dict whose Unigram model became a byte-fallback BPE.

    tokenizer_json (Dict[str, Any]): ``json.loads(fast_tokenizer.backend_tokenizer.to_str())``.
    RETURNS (Dict[str, Any]): The same tokenizer with ``model`` replaced.
    RAISES (ValueError): If the model is not a Unigram with a vocabulary.
    """
    model = tokenizer_json.get("model") or {}
    if model.get("type") != "Unigram" or not model.get("vocab"):
        raise ValueError(Errors.E128.format(type=model.get("type")))
    pieces = [(str(p), float(s)) for p, s in model["vocab"]]
    vocab, duplicates = first_ids(pieces)
    if duplicates:
        logger.info("SentencePiece vocabulary has %d duplicate piece(s); the first id of each is kept", duplicates)
    unk_id = model.get("unk_id")
    unk = pieces[unk_id][0] if isinstance(unk_id, int) and 0 <= unk_id < len(pieces) else None
    out = dict(tokenizer_json)
    out["model"] = {
        "type": "BPE",
        "dropout": None,
        "unk_token": unk,
        "continuing_subword_prefix": None,
        "end_of_word_suffix": None,
        "fuse_unk": True,
        "byte_fallback": bool(model.get("byte_fallback", True)),
        "ignore_merges": False,
        "vocab": vocab,
        "merges": [list(m) for m in merges_from_scores(pieces, vocab)],
    }
    return out


def repair_gguf_spm_tokenizer(tokenizer: Any) -> Any:
    """Give a transformers fast tokenizer loaded from a Gemma-style GGUF its BPE model back.

    tokenizer (Any): A ``PreTrainedTokenizerFast`` whose backend model is Unigram.
    RETURNS (Any): A tokenizer of the same class with a BPE backend, same ids and special tokens.
    """
    from tokenizers import Tokenizer

    fixed = unigram_to_bpe(json.loads(tokenizer.backend_tokenizer.to_str()))
    backend = Tokenizer.from_str(json.dumps(fixed))
    kwargs = {
        key: getattr(tokenizer, key)
        for key in ("bos_token", "eos_token", "unk_token", "pad_token")
        if getattr(tokenizer, key, None) is not None
    }
    repaired = type(tokenizer)(tokenizer_object=backend, **kwargs)
    for attr in ("add_bos_token", "add_eos_token"):
        if hasattr(tokenizer, attr):
            setattr(repaired, attr, getattr(tokenizer, attr))
    return repaired
