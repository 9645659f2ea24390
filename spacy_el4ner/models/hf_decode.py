"""Greedy decoding on the transformers engine: batches that shrink as answers finish, a shared
prompt prefix computed once, drafted tokens by prompt lookup, stop strings by vocabulary lookup.
``HFDecoding`` is a part of ``HFModel``."""
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from .base import common_prefix, cut_at_stop, cut_loop, looping


# A prefix shared by every prompt of a generation batch is computed once when at least this long.
_MIN_SHARED = 16


class HFDecoding:
    """``HFModel``'s generation (its ``model``, ``tokenizer``, settings and counters)."""

    _stats: Dict[str, int]
    model: Any
    tokenizer: Any
    batch_size: int

    def _generate_uncached(
        self,
        texts: List[str],
        max_new_tokens: int,
        stop: Sequence[str],
        constrain_to: Optional[List[str]],
        separators: Sequence[str],
    ) -> Iterator[Tuple[int, str]]:
        """Answers in batches of ``batch_size`` prompts of similar length. With ``constrain_to``
        (one input text per prompt), decoding is constrained so that the answer is made only of
        ``separators`` and copies of text from that input (see ``models.constrained``)."""
        encoded = [self._encode(text, max_new_tokens) for text in texts]
        order = sorted(range(len(texts)), key=lambda i: -len(encoded[i]))  # length buckets: less padding
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            rows = None if constrain_to is None else [constrain_to[i] for i in batch]
            outs = self._generate_batch([encoded[i] for i in batch], max_new_tokens, stop, rows, separators)
            yield from zip(batch, outs)

    def _generate_batch(
        self,
        batch: List[List[int]],
        max_new_tokens: int,
        stop: Sequence[str],
        constrain_to: Optional[List[str]] = None,
        separators: Sequence[str] = (),
    ) -> List[str]:
        tok = self.tokenizer
        width = max(len(ids) for ids in batch)
        processor = None
        if constrain_to is not None:
            from .constrained import substring_processor

            processor = substring_processor(tok, constrain_to, separators, prompt_length=width, eos_token_id=self._eos_ids())
        if self.shrink_batches:
            rows = self._decode_shrinking(batch, max_new_tokens, stop, processor)
        else:
            rows = self._decode_generate(batch, max_new_tokens, stop, processor)
        answers: List[str] = []
        for row in rows:
            self._stats["generated_tokens"] += len(row)
            text = tok.decode(row, skip_special_tokens=True)
            answers.append(cut_at_stop(text, stop))
        return answers

    def _decode_generate(
        self, batch: List[List[int]], max_new_tokens: int, stop: Sequence[str], processor: Any
    ) -> List[List[int]]:
        """Greedy decoding of a left-padded batch by ``model.generate`` (every row is computed
        until the longest answer ends). RETURNS: The generated token ids of each row."""
        import torch

        tok = self.tokenizer
        pad = tok.pad_token_id
        kwargs = greedy_inputs(batch, pad, self._device(), max_new_tokens)
        if stop and self.token_stop and all(len(x) == 1 for x in stop):
            from transformers import StoppingCriteriaList

            kwargs["stopping_criteria"] = StoppingCriteriaList([TokenStop(tok, stop, self._device())])
        elif stop:
            kwargs.update(stop_strings=list(stop), tokenizer=tok)
        if processor is not None:
            from transformers import LogitsProcessorList

            kwargs["logits_processor"] = LogitsProcessorList([processor])
        self._stats["prompt_tokens"] += sum(len(ids) for ids in batch)
        with torch.no_grad():
            out = self.model.generate(**kwargs)
        new = out[:, kwargs["input_ids"].shape[1] :]
        self._stats["forward_passes"] += int(new.shape[1]) or 1
        rows = [[t for t in row if t != pad] for row in new.tolist()]
        if self.stop_loops:  # the same answers as the shrinking decoder (this path is the naive baseline)
            rows = [cut_loop(row) for row in rows]
        return rows

    def _eos_ids(self) -> List[int]:
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return sorted(ids)

    def _decode_shrinking(
        self, batch: List[List[int]], max_new_tokens: int, stop: Sequence[str], processor: Any
    ) -> List[List[int]]:
        """Greedy decoding of a batch of prompts (token ids) that drops each row from the batch
        (and from the key/value cache) as soon as it is finished, so a long answer does not keep
        the short ones' rows in every step, as ``generate`` does. A prefix common to all the
        prompts (the instruction) is computed once and its cache copied to every row; the tails
        follow, left-padded. Same stop rules as ``generate`` (EOS, ``max_new_tokens``, stop
        strings) and the same constraint (``processor``: a ``SubstringLogitsProcessor`` or None).
        Unconstrained, each step also feeds up to ``draft_tokens`` drafted tokens per row
        (``lookup_draft``: what followed the same tokens earlier in the prompt or answer) and
        takes those that greedy decoding would have chosen, so several tokens can come out of
        one pass; the keys/values of the drafts not taken are masked out for later steps.
        Exact in exact arithmetic; in bf16 a wider pass rounds differently, so an answer may
        differ where two tokens are nearly tied (3 of 144 extraction answers on WNUT-17), as it
        does when the batch changes.
        RETURNS: The generated token ids of each row (EOS included where it ended the row).
        """
        import torch

        tok = self.tokenizer
        dev = self._device()
        pad = tok.pad_token_id
        eos = set(self._eos_ids())
        one_char = bool(stop) and all(len(x) == 1 for x in stop)
        stop_mask = TokenStop(tok, stop, "cpu").mask if one_char else None
        common = _shared_prefix(batch)
        if len(batch) < 2 or common < _MIN_SHARED:
            common = 0
        draft = self.draft_tokens if processor is None else 0
        out: List[List[int]] = [[] for _ in batch]
        active = list(range(len(batch)))
        with torch.no_grad():
            cache, mask, next_pos, last = self._prefill_padded(batch, common)
            logits = last.unsqueeze(1)  # (rows, positions, vocab): the positions fed in this step
            drafts: List[List[int]] = [[] for _ in batch]
            while True:
                keep: List[int] = []
                valid: List[int] = []
                best = None if processor is not None else logits.float().argmax(-1).tolist()
                for k, r in enumerate(active):
                    finished = False
                    j = 0
                    for j in range(len(drafts[k]) + 1):
                        if best is not None:
                            t = best[k][j]
                        else:
                            t = int(processor.constrain([r], [out[r]], logits[k : k + 1, j].float())[0].argmax())
                        out[r].append(t)
                        finished = (
                            t in eos
                            or len(out[r]) >= max_new_tokens
                            or (stop_mask is not None and t < stop_mask.shape[0] and bool(stop_mask[t]))
                            or (bool(stop) and not one_char and any(x in tok.decode(out[r]) for x in stop))
                            or (self.stop_loops and looping(out[r]))
                        )
                        # the next drafted token was fed after this one: its logits hold if it is the one chosen
                        if finished or j >= len(drafts[k]) or drafts[k][j] != t:
                            break
                    valid.append(j + 1)  # the inputs of this step whose keys/values are right
                    if not finished:
                        keep.append(k)
                width = logits.shape[1]
                if width > 1:  # drafted tokens that were not taken: masked out of the cache
                    taken = torch.arange(width, device=dev).unsqueeze(0) < torch.tensor(valid, device=dev).unsqueeze(1)
                    mask[:, -width:] = taken.to(mask.dtype)
                # next_pos: the position of the first input of a step (after the prefill, of the
                # prompt's last token); the token fed next goes after the inputs that were right
                next_pos = next_pos + torch.tensor(valid, device=dev).unsqueeze(1)
                if not keep:
                    break
                if len(keep) < len(active):
                    index = torch.tensor(keep, device=dev)
                    cache.batch_select_indices(index)
                    mask, next_pos = mask[index], next_pos[index]
                    active = [active[k] for k in keep]
                drafts = [lookup_draft(batch[r] + out[r], draft) for r in active] if draft else [[] for _ in active]
                width = 1 + max(len(d) for d in drafts)
                step = torch.tensor([[out[r][-1]] + d + [pad] * (width - 1 - len(d)) for r, d in zip(active, drafts)], device=dev)
                fed = torch.tensor([[1] * (1 + len(d)) + [0] * (width - 1 - len(d)) for d in drafts], dtype=mask.dtype, device=dev)
                mask = torch.cat([mask, fed], dim=1)
                positions = next_pos + torch.arange(width, device=dev).unsqueeze(0)
                logits = self.model(
                    input_ids=step, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True,
                    logits_to_keep=width,
                ).logits
                self._stats["forward_passes"] += 1
                self._stats["drafted_tokens"] += sum(len(d) for d in drafts)
        return out

    def _prefill_padded(self, batch: List[List[int]], common: int) -> Tuple[Any, Any, Any, Any]:
        """The prompts' key/value cache for decoding, left-padded: their ``common`` prefix
        computed once, then the tails after it. On a CPU the tails go through in groups of
        nearly equal length (``prefill_groups``), so that prompts of different lengths (each
        sentence has its own demonstrations) do not cost a pass of padding; on a GPU, in one
        padded pass. RETURNS: (cache, attention mask, the position of each row's last prompt
        token, its logits)."""
        import torch
        from transformers import DynamicCache

        dev = self._device()
        pad = self.tokenizer.pad_token_id
        tails = [ids[common:] for ids in batch]
        width = max(len(t) for t in tails)
        mask = torch.tensor([[1] * common + [0] * (width - len(t)) + [1] * len(t) for t in tails], device=dev)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, common:]
        shared = None
        if common:
            shared = DynamicCache()
            self.model(input_ids=torch.tensor([batch[0][:common]], device=dev), past_key_values=shared, use_cache=True, logits_to_keep=1)
            self._stats["forward_passes"] += 1
            shared = shared.to_legacy_cache()
        self._stats["prompt_tokens"] += common + sum(len(t) for t in tails)
        lengths = [len(t) for t in tails]
        groups = [list(range(len(batch)))] if dev.type != "cpu" else prefill_groups(lengths)
        layers: List[List[Tuple[Any, Any]]] = []  # per group, per layer: keys and values padded to `width`
        logits = []
        for group in groups:
            w = max(lengths[i] for i in group)
            index = torch.tensor(group, device=dev)
            ids = torch.tensor([[pad] * (w - lengths[i]) + list(tails[i]) for i in group], device=dev)
            group_mask = torch.cat([mask[index, :common], mask[index, common + width - w :]], dim=1)
            cache = DynamicCache()
            if shared is not None:
                cache = DynamicCache.from_legacy_cache(
                    tuple((k.expand(len(group), -1, -1, -1).clone(), v.expand(len(group), -1, -1, -1).clone()) for k, v in shared)
                )
            out = self.model(
                input_ids=ids, attention_mask=group_mask, position_ids=positions[index, width - w :],
                past_key_values=cache, use_cache=True, logits_to_keep=1,
            )
            self._stats["forward_passes"] += 1
            logits.append(out.logits[:, -1])
            layers.append([(_left_pad(k, common, width - w), _left_pad(v, common, width - w)) for k, v in cache.to_legacy_cache()])
        order = torch.tensor([i for group in groups for i in group], device=dev)
        back = torch.empty_like(order)
        back[order] = torch.arange(len(order), device=dev)
        if len(groups) == 1:
            legacy = tuple(layers[0])
        else:
            legacy = tuple(
                (torch.cat([g[n][0] for g in layers])[back], torch.cat([g[n][1] for g in layers])[back]) for n in range(len(layers[0]))
            )
        return DynamicCache.from_legacy_cache(legacy), mask, positions[:, -1:], torch.cat(logits)[back]


def prefill_groups(lengths: Sequence[int], slack: float = 1.1) -> List[List[int]]:
    """Rows (indices into ``lengths``, prompt tail lengths) grouped for prefill passes: the
    longest first, each group taking the next longest rows while its padded size (rows x
    longest) stays within ``slack`` x its tokens. Equal lengths make one group.
    RETURNS (List[List[int]]): The groups, longest rows first."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: List[List[int]] = []
    for i in order:
        if groups:
            group = groups[-1]
            longest = lengths[group[0]]
            if longest * (len(group) + 1) <= slack * (sum(lengths[j] for j in group) + lengths[i]):
                group.append(i)
                continue
        groups.append([i])
    return groups


def _left_pad(x: Any, common: int, n: int) -> Any:
    """``x`` (batch, heads, positions, dim) with ``n`` zero positions after its first ``common``."""
    if n == 0:
        return x
    import torch

    zeros = x.new_zeros(x.shape[0], x.shape[1], n, x.shape[3])
    return torch.cat([x[:, :, :common], zeros, x[:, :, common:]], dim=2)


def _shared_prefix(prompts: Sequence[Sequence[int]]) -> int:
    """RETURNS (int): The length of the prefix common to ``prompts`` (token id lists), leaving
    each at least one token of its own (its last logits give what comes next)."""
    return min(min(common_prefix(prompts[0], ids) for ids in prompts), min(len(ids) for ids in prompts) - 1)


def lookup_draft(context: Sequence[int], n: int, ngram: int = 3, window: int = 1024) -> List[int]:
    """Prompt lookup: the ``n`` tokens that followed the latest earlier occurrence of the longest
    (up to ``ngram`` tokens) end of ``context`` (the prompt and the answer so far) within its last
    ``window`` tokens. An extraction answer copies the input text, so its next tokens are often
    there. RETURNS (List[int]): The drafted tokens (none when the end occurs nowhere before)."""
    if n <= 0:
        return []
    ctx = list(context[-window:])
    end = len(ctx)
    for size in range(min(ngram, end - 1), 0, -1):
        tail = ctx[end - size :]
        for i in range(end - size - 1, -1, -1):
            if ctx[i : i + size] == tail:
                return ctx[i + size : i + size + n]
    return []


def greedy_inputs(batch: Sequence[Sequence[int]], pad: int, device: Any, max_new_tokens: int) -> Dict[str, Any]:
    """``generate`` arguments for greedy decoding of left-padded prompts (token id lists)."""
    import torch

    width = max(len(ids) for ids in batch)
    input_ids = torch.tensor([[pad] * (width - len(ids)) + list(ids) for ids in batch], device=device)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=device)
    return dict(
        input_ids=input_ids,
        attention_mask=mask,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        temperature=None,
        top_p=None,
        top_k=None,
        pad_token_id=pad,
    )


_STOP_MASKS: Dict[Tuple[int, Tuple[str, ...], str], Any] = {}


class TokenStop:
    """Stops a row as soon as its newest token contains one of the (one-character) stop strings.

    Exact for one-character stop strings: the answer is cut at the first stop string anyway
    (``cut_at_stop``), and such a string never spans two tokens. One tensor lookup per step.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str], device: Any) -> None:
        import torch

        key = (id(tokenizer), tuple(sorted(stop)), str(device))
        if key not in _STOP_MASKS:
            n = max(len(tokenizer), tokenizer.vocab_size)
            texts = tokenizer.batch_decode([[i] for i in range(n)])
            _STOP_MASKS[key] = torch.tensor([any(x in t for x in stop) for t in texts], dtype=torch.bool, device=device)
        self.mask = _STOP_MASKS[key]

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        last = input_ids[:, -1]
        return self.mask[last.clamp(max=self.mask.shape[0] - 1)]
