"""The contrastive term of CLLMFS: supervised InfoNCE over span representations."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..errors import Errors


def span_representations(hidden_states: torch.Tensor, ranges: Sequence[Tuple[int, int]]) -> torch.Tensor:
    """Mean-pool token states per span.

    hidden_states (torch.Tensor): (seq, d) token states of one sequence.
    ranges (Sequence[Tuple[int, int]]): Token ranges [start, end), non-empty, within the sequence.
    RETURNS (torch.Tensor): (len(ranges), d) span representations.
    """
    if hidden_states.dim() != 2:
        raise ValueError(Errors.E506.format(shape=tuple(hidden_states.shape)))
    if not ranges:
        return hidden_states.new_zeros((0, hidden_states.shape[1]))
    seq = hidden_states.shape[0]
    rows = []
    for start, end in ranges:
        if not 0 <= start < end <= seq:
            raise ValueError(Errors.E507.format(start=start, end=end, seq=seq))
        rows.append(hidden_states[start:end].mean(dim=0))
    return torch.stack(rows)


def info_nce(
    reps: torch.Tensor,
    types: torch.Tensor,
    temperature: float = 0.1,
    *,
    keys: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Supervised InfoNCE over span representations (cosine similarity).

    For each anchor that is an entity span (type id >= 0), the positives are the other spans of
    the same type and the denominator runs over all other spans (positives, spans of other types
    and non-entity spans):

        loss_i = -log( sum_{p in P(i)} exp(sim(i, p) / t) / sum_{j != i} exp(sim(i, j) / t) )

    and the loss is the mean of loss_i over the anchors with at least one positive.

    reps (torch.Tensor): (n, d) span representations.
    types (torch.Tensor): (n,) integer type ids; negative ids (e.g. -1) mark non-entity spans,
        which are never anchors nor positives.
    temperature (float): The softmax temperature t (> 0).
    keys (Optional[torch.Tensor]): (n,) optional mention ids: spans with the same key as the
        anchor (the same mention seen in another prompt) are left out of its sums.
    RETURNS (torch.Tensor): The scalar loss; 0 (still attached to ``reps``' graph) when no anchor
        has a positive.
    """
    if temperature <= 0:
        raise ValueError(Errors.E508.format(value=temperature))
    if reps.dim() != 2 or types.dim() != 1 or reps.shape[0] != types.shape[0]:
        raise ValueError(Errors.E509.format(reps=tuple(reps.shape), types=tuple(types.shape)))
    n = reps.shape[0]
    if n < 2:
        return reps.sum() * 0.0
    types = types.to(reps.device)
    normed = F.normalize(reps.float(), dim=-1)
    logits = normed @ normed.t() / temperature
    eye = torch.eye(n, dtype=torch.bool, device=reps.device)
    others = ~eye
    if keys is not None:
        keys = keys.to(reps.device)
        others = others & (keys[:, None] != keys[None, :])
    positive = (types[:, None] == types[None, :]) & others & (types[:, None] >= 0)
    anchors = positive.any(dim=1)
    if not bool(anchors.any()):
        return reps.sum() * 0.0
    neg_inf = torch.finfo(logits.dtype).min
    log_pos = torch.logsumexp(logits.masked_fill(~positive, neg_inf), dim=1)
    log_all = torch.logsumexp(logits.masked_fill(~others, neg_inf), dim=1)
    return (log_all - log_pos)[anchors].mean()
