"""Scoring continuations on the transformers engine: shared prefixes computed once and kept
across calls, prompts that share a prefix packed into one pass under a block mask, padded
batches on accelerators. ``HFScoring`` is a part of ``HFModel``."""
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import Errors
from .base import common_prefix
from .hf_decode import _shared_prefix, greedy_inputs


SCORE_BATCHING = ("auto", "packed", "on", "off")
# What one more forward pass costs on a CPU, in prompt tokens (about 50 ms fixed against 1.2 ms a
# token for Qwen2.5-0.5B in bf16 on 2 cores): packing a prompt with a group is worth it while it
# lengthens the group's tails by fewer tokens than this.
_PASS_TOKENS = 32


class HFScoring:
    """``HFModel``'s scoring (its ``model``, ``tokenizer``, settings and counters)."""

    _stats: Dict[str, int]
    model: Any
    tokenizer: Any

    def _score_uncached(self, texts: List[str], continuations: List[Sequence[str]]) -> List[List[float]]:
        """On a CPU, consecutive prompts share their key/value cache up to their common token prefix
        (the instruction and demonstrations of one text are computed once for all its spans and
        labels); the first token of every continuation is read off the prompt's own forward pass,
        and only longer continuations need one small extra pass each. On an accelerator the
        prompts go in padded batches instead (see ``score_batching``).
        """
        todo: List[Tuple[List[int], List[List[int]]]] = []
        for text, conts in zip(texts, continuations):
            cont_ids = self.continuation_ids(conts)
            todo.append((self._encode(text, max(len(c) for c in cont_ids)), cont_ids))
        mode = self._scoring_mode() if self.share_prefix else "naive"
        if mode == "on":
            return self._score_batched(todo)
        if mode == "packed":
            return self._score_packed_all(todo)
        computed = []
        state: Optional[Tuple[List[int], Any]] = None
        for ids, cont_ids in todo:
            if self.share_prefix:
                scores, state = self._score_shared(ids, cont_ids, state)
            else:
                scores = self._score_naive(ids, cont_ids)
            computed.append(scores)
        return computed

    def _scoring_mode(self) -> str:
        """"on", "packed" or "off": ``score_batching`` with "auto" resolved for the device."""
        if self.score_batching == "auto":
            return "on" if self._device().type != "cpu" else "packed"
        return self.score_batching

    def _batch_scores(self) -> bool:
        return self._scoring_mode() == "on"

    def _score_packed_all(self, items: List[Tuple[List[int], List[List[int]]]]) -> List[List[float]]:
        """Scores by ``_score_packed``, over groups of consecutive prompts that share a prefix.

        A prompt joins the group when that lengthens the tails of the prompts already in it by
        fewer tokens in all than a forward pass costs (``_PASS_TOKENS``): the spans of one
        sentence share its instruction and demonstrations and go together, two sentences share
        only the instruction and do not; and while the packed tokens fit in ``pack_tokens``.
        Each group starts from the kept prefix cache that shares most of its prefix
        (``prefix_cache_tokens``).
        """
        call = self._stats["calls"]
        out: List[List[float]] = []
        group: List[Tuple[List[int], List[List[int]]]] = []
        common = 0
        size = 0

        def run() -> None:
            state = self._take_prefix(group[0][0][: _group_prefix(group)])
            scores, (prefix, cache) = self._score_packed(group, state)
            self._keep_prefix(prefix, cache, call)
            out.extend(scores)

        for ids, conts in items:
            extra = sum(len(c) - 1 for c in conts)
            if group:
                lcp = min(common, common_prefix(group[0][0], ids), len(ids) - 1)
                grown = size + (common - lcp) * len(group) + len(ids) - lcp + extra
                if lcp > 0 and (common - lcp) * len(group) <= _PASS_TOKENS and grown <= self.pack_tokens:
                    group.append((ids, conts))
                    common, size = lcp, grown
                    continue
                run()
            group, common, size = [(ids, conts)], len(ids) - 1, 1 + extra
        if group:
            run()
        return out

    def _take_prefix(self, prefix: List[int]) -> Optional[Tuple[List[int], Any]]:
        """The kept cache that shares the longest start with ``prefix``, as a ``_score_packed``
        state: handed over when all of it is reused (the pass extends it, and it is kept again
        under its new prefix), copied up to the shared length otherwise (the kept one stays)."""
        best: Optional[Tuple[int, ...]] = None
        best_len = 0
        for key in self._prefixes:
            n = common_prefix(key, prefix)
            if n > best_len:
                best, best_len = key, n
        if best is None:
            return None
        cache, _ = self._prefixes[best]
        if best_len == len(best):
            del self._prefixes[best]
            self._prefix_total -= len(best)
            return list(best), cache
        return list(best[:best_len]), _copy_cache(cache, best_len)

    def _keep_prefix(self, prefix: List[int], cache: Any, call: int) -> None:
        """Keep ``cache`` (of exactly the tokens ``prefix``) for later groups and calls, within
        ``prefix_cache_tokens``: prefixes of calls before the previous one go first (oldest
        first); when the new one still does not fit, it is not kept (so that one long call does
        not push out the start of itself that the next call will ask for). With a bound of 0
        only the newest prefix is kept (reuse between consecutive groups)."""
        key = tuple(prefix)
        if not key:
            return
        if key in self._prefixes:
            self._prefix_total -= len(key)
            del self._prefixes[key]
        if self.prefix_cache_tokens == 0:
            self._prefixes.clear()
            self._prefixes[key] = (cache, call)
            self._prefix_total = len(key)
            return
        for old in [k for k, (_, c) in self._prefixes.items() if c < call - 1]:
            if self._prefix_total + len(key) <= self.prefix_cache_tokens:
                break
            del self._prefixes[old]
            self._prefix_total -= len(old)
        if self._prefix_total + len(key) <= self.prefix_cache_tokens:
            self._prefixes[key] = (cache, call)
            self._prefix_total += len(key)

    def _score_packed(
        self, group: List[Tuple[List[int], List[List[int]]]], state: Optional[Tuple[List[int], Any]]
    ) -> Tuple[List[List[float]], Tuple[List[int], Any]]:
        """One forward pass for a group of prompts: the part of their common prefix P that the
        kept cache (``state``) lacks, then each prompt's tail (after P) and, after each tail, every
        continuation but its last token. Each tail sees P and itself; each continuation sees P,
        its prompt's tail and itself (a block attention mask with explicit positions). Logits
        are kept only where they are read. RETURNS: the scores, and the new state (P, its cache).
        """
        import torch
        from transformers import DynamicCache

        dev = self._device()
        n_common = _group_prefix(group)
        prefix = group[0][0][:n_common]
        reuse = 0
        cache = None
        if state is not None:
            prev, cache = state
            reuse = min(common_prefix(prev, prefix), n_common)
            if reuse > 0:
                cache.crop(reuse)
        if reuse == 0 or cache is None:
            cache = DynamicCache()
        tokens: List[int] = list(prefix[reuse:])
        positions: List[int] = list(range(reuse, n_common))
        # segments: (start in tokens, length, start and length of the tail it also sees)
        segments: List[Tuple[int, int, int, int]] = []
        reads: List[Tuple[int, int, int, int]] = []  # (item, continuation or -1, first logit row, rows)
        keep: List[int] = []
        for n, (ids, conts) in enumerate(group):
            tail = ids[n_common:]
            tail_start = len(tokens)
            segments.append((tail_start, len(tail), 0, 0))
            tokens.extend(tail)
            positions.extend(range(n_common, len(ids)))
            reads.append((n, -1, len(keep), 1))
            keep.append(tail_start + len(tail) - 1)
            for j, c in enumerate(conts):
                if len(c) < 2:
                    continue
                start = len(tokens)
                segments.append((start, len(c) - 1, tail_start, len(tail)))
                tokens.extend(c[:-1])
                positions.extend(range(len(ids), len(ids) + len(c) - 1))
                reads.append((n, j, len(keep), len(c) - 1))
                keep.extend(range(start, start + len(c) - 1))
        q = len(tokens)
        base = len(prefix) - reuse  # the uncached part of P comes first in `tokens`
        mask = torch.zeros((q, reuse + q), dtype=torch.bool)
        mask[:, :reuse] = True
        mask[:, reuse : reuse + base] = True
        mask[:base, reuse : reuse + base] = torch.ones((base, base), dtype=torch.bool).tril()
        for start, length, sees, sees_len in segments:
            rows = slice(start, start + length)
            mask[rows, reuse + start : reuse + start + length] = torch.ones((length, length), dtype=torch.bool).tril()
            mask[rows, reuse + sees : reuse + sees + sees_len] = True
        dtype = next(self.model.parameters()).dtype
        # additive form: every attention implementation (eager, sdpa) reads it the same way
        bias = torch.zeros(mask.shape, dtype=dtype).masked_fill_(~mask, torch.finfo(dtype).min)
        with torch.no_grad():
            out = self.model(
                input_ids=torch.tensor([tokens], device=dev),
                attention_mask=bias[None, None].to(dev),
                position_ids=torch.tensor([positions], device=dev),
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=torch.tensor(keep, device=dev),
            )
        self._stats["forward_passes"] += 1
        self._stats["prompt_tokens"] += q
        logp = torch.log_softmax(out.logits[0].float(), dim=-1)
        scores = [[0.0] * len(conts) for _, conts in group]
        for n, j, row, length in reads:
            conts = group[n][1]
            if j < 0:  # first tokens of every continuation, from the prompt's last logits
                for i, x in enumerate(logp[row, [c[0] for c in conts]].tolist()):
                    scores[n][i] += x
            else:  # the rest of continuation j
                rest = torch.tensor(conts[j][1:], device=dev)
                scores[n][j] += float(logp[row : row + length].gather(-1, rest[:, None]).sum())
        cache.crop(n_common)
        return scores, (list(prefix), cache)

    def _score_batched(self, items: List[Tuple[List[int], List[List[int]]]]) -> List[List[float]]:
        """Scores in padded batches of ``batch_size`` rows: one row per prompt (its last logits
        give every continuation's first token) and one per longer continuation (prompt +
        continuation minus its last token)."""
        import torch

        rows: List[Tuple[int, int, List[int]]] = []  # (item, continuation or -1, token ids)
        for n, (ids, conts) in enumerate(items):
            rows.append((n, -1, ids))
            rows.extend((n, j, ids + c[:-1]) for j, c in enumerate(conts) if len(c) > 1)
        scores = [[0.0] * len(conts) for _, conts in items]
        order = sorted(range(len(rows)), key=lambda r: -len(rows[r][2]))  # length buckets
        pad = self.tokenizer.pad_token_id
        dev = self._device()
        with torch.no_grad():
            for start in range(0, len(order), self.batch_size):
                batch = [rows[r] for r in order[start : start + self.batch_size]]
                keep = max(1 if j < 0 else len(items[n][1][j]) for n, j, _ in batch)
                kwargs = greedy_inputs([seq for _, _, seq in batch], pad, dev, 0)
                mask = kwargs["attention_mask"]
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                out = self.model(
                    input_ids=kwargs["input_ids"], attention_mask=mask, position_ids=positions, logits_to_keep=keep
                )
                self._stats["forward_passes"] += 1
                self._stats["prompt_tokens"] += sum(len(seq) for _, _, seq in batch)
                logp = torch.log_softmax(out.logits.float(), dim=-1)
                for b, (n, j, _) in enumerate(batch):
                    conts = items[n][1]
                    if j < 0:  # first tokens of every continuation, from the prompt's last logits
                        firsts = logp[b, keep - 1, [c[0] for c in conts]].tolist()
                        for i, x in enumerate(firsts):
                            scores[n][i] += x
                    else:  # the rest of continuation j
                        c = conts[j]
                        m = len(c) - 1
                        scores[n][j] += sum(logp[b, keep - m : keep, :].gather(-1, torch.tensor(c[1:], device=dev)[:, None]).flatten().tolist())
        return scores

    def continuation_ids(self, conts: Sequence[str]) -> List[List[int]]:
        tok = self.tokenizer
        ids = [tok(c, add_special_tokens=False)["input_ids"] for c in conts]
        for c, i in zip(conts, ids):
            if not i:
                raise ValueError(Errors.E109.format(value=c))
        return ids

    def _score_naive(self, ids: List[int], cont_ids: List[List[int]]) -> List[float]:
        import torch

        dev = self._device()
        scores = []
        with torch.no_grad():
            for c in cont_ids:
                out = self.model(input_ids=torch.tensor([ids + c], device=dev))
                self._stats["forward_passes"] += 1
                self._stats["prompt_tokens"] += len(ids) + len(c)
                logp = torch.log_softmax(out.logits[0, len(ids) - 1 : -1].float(), dim=-1)
                scores.append(sum(float(logp[j, t]) for j, t in enumerate(c)))
        return scores

    def _score_shared(
        self, ids: List[int], cont_ids: List[List[int]], state: Optional[Tuple[List[int], Any]]
    ) -> Tuple[List[float], Tuple[List[int], Any]]:
        import torch
        from transformers import DynamicCache

        dev = self._device()
        model = self.model
        reuse = 0
        cache = None
        if state is not None:
            prev, cache = state
            reuse = min(common_prefix(prev, ids), len(ids) - 1)
            if reuse > 0:
                cache.crop(reuse)
        if reuse == 0:
            cache = DynamicCache()
        with torch.no_grad():
            out = model(
                input_ids=torch.tensor([ids[reuse:]], device=dev), past_key_values=cache, use_cache=True, logits_to_keep=1
            )
            self._stats["forward_passes"] += 1
            self._stats["prompt_tokens"] += len(ids) - reuse
            first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
            scores = [float(first[c[0]]) for c in cont_ids]
            for i, c in enumerate(cont_ids):
                if len(c) == 1:
                    continue
                step = model(input_ids=torch.tensor([c[:-1]], device=dev), past_key_values=cache, use_cache=True)
                self._stats["forward_passes"] += 1
                logp = torch.log_softmax(step.logits[0].float(), dim=-1)
                scores[i] += sum(float(logp[j, c[j + 1]]) for j in range(len(c) - 1))
                cache.crop(len(ids))
        return scores, (ids, cache)


def _copy_cache(cache: Any, length: int) -> Any:
    """RETURNS: A new ``DynamicCache`` with a copy of the first ``length`` positions of ``cache``."""
    from transformers import DynamicCache

    return DynamicCache.from_legacy_cache(
        tuple((k[:, :, :length].clone(), v[:, :, :length].clone()) for k, v in cache.to_legacy_cache())
    )


def _group_prefix(group: Sequence[Tuple[List[int], Any]]) -> int:
    """RETURNS (int): ``_shared_prefix`` of a scoring group's prompts."""
    return _shared_prefix([ids for ids, _ in group])
