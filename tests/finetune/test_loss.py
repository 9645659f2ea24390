"""InfoNCE and span pooling on tiny hand-made tensors."""
import math

import pytest
import torch

from spacy_el4ner.finetune.loss import info_nce, span_representations

# Example A (temperature 1):
#   v0 = (1, 0) type 0      v1 = (2, 0) type 0      v2 = (0, 3) non-entity (-1)      v3 = (1, 1) type 1
#   cosine: cos(v0, v1) = 1; cos(v0, v2) = cos(v1, v2) = 0; cos(v0, v3) = cos(v1, v3) = 1/sqrt(2) = 0.70711
#   anchor v0: positives {v1}: e^1; all others {v1, v2, v3}: e^1 + e^0 + e^0.70711
#       loss0 = -log(e / (e + 1 + e^0.70711)) = log(1 + e^-1 + e^(0.70711 - 1))
#             = log(1 + 0.36788 + 0.74611) = log(2.11399) = 0.74857
#   anchor v1: the same similarities -> 0.74857
#   v2 is a non-entity span (never an anchor); v3 has no other span of type 1 (no positive).
#   loss = mean(0.74857, 0.74857) = 0.74857
A_REPS = [[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [1.0, 1.0]]
A_TYPES = [0, 0, -1, 1]
A_LOSS = 0.7485730

# Example B (temperature 0.5): a = (1, 0), b = (1, 0), c = (0, 1) all type 0; n = (-1, 0) non-entity.
#   sim / t: a-b = 1/0.5 = 2, a-c = 0, a-n = -1/0.5 = -2, b-c = 0, b-n = -2, c-n = 0
#   anchor a: positives {b, c}: e^2 + e^0; all {b, c, n}: e^2 + 1 + e^-2
#       loss_a = log((e^2 + 1 + e^-2) / (e^2 + 1)) = log(1 + 0.135335 / 8.389056) = log(1.016132) = 0.016004
#   anchor b: the same, 0.016004
#   anchor c: positives {a, b}: e^0 + e^0 = 2; all {a, b, n}: 1 + 1 + 1 = 3 -> loss_c = log(3/2) = 0.405465
#   loss = (0.016004 + 0.016004 + 0.405465) / 3 = 0.145824
B_REPS = [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]
B_TYPES = [0, 0, 0, -1]
B_LOSS = 0.1458241


def _loss(reps, types, t, **kwargs):
    return info_nce(torch.tensor(reps), torch.tensor(types), t, **kwargs)


def test_hand_computed_example_a():
    assert float(_loss(A_REPS, A_TYPES, 1.0)) == pytest.approx(A_LOSS, abs=1e-5)
    assert A_LOSS == pytest.approx(math.log(1 + math.exp(-1) + math.exp(1 / math.sqrt(2) - 1)), abs=1e-6)


def test_hand_computed_example_b():
    assert float(_loss(B_REPS, B_TYPES, 0.5)) == pytest.approx(B_LOSS, abs=1e-5)


def test_order_and_scale_invariant():
    perm = [3, 1, 0, 2]
    reps = [[5 * x for x in A_REPS[i]] for i in perm]
    types = [A_TYPES[i] for i in perm]
    assert float(_loss(reps, types, 1.0)) == pytest.approx(A_LOSS, abs=1e-5)


def test_no_positive_returns_zero_with_grad():
    reps = torch.tensor(A_REPS, requires_grad=True)
    for types in ([0, 1, -1, 2], [-1, -1, -1, -1]):
        loss = info_nce(reps, torch.tensor(types), 0.1)
        assert loss.shape == () and loss.item() == 0.0
        assert loss.requires_grad
        loss.backward()
        assert reps.grad is not None and float(reps.grad.abs().sum()) == 0.0
    single = torch.tensor([[1.0, 2.0]], requires_grad=True)
    assert info_nce(single, torch.tensor([0]), 0.1).item() == 0.0


def test_gradient_pulls_positives_together():
    reps = torch.tensor(A_REPS, requires_grad=True)
    loss = info_nce(reps, torch.tensor(A_TYPES), 1.0)
    loss.backward()
    assert float(reps.grad.abs().sum()) > 0
    with torch.no_grad():
        moved = reps - 0.5 * reps.grad
    assert float(info_nce(moved, torch.tensor(A_TYPES), 1.0)) < loss.item()


def test_temperature_effect():
    # loss(t) = log(1 + e^(-1/t) + e^(-0.29289/t)) for example A: it grows with t towards
    # log(3) (uniform over the 3 other spans, one of them positive).
    losses = [float(_loss(A_REPS, A_TYPES, t)) for t in (0.05, 0.1, 1.0, 10.0)]
    assert losses == sorted(losses) and len(set(losses)) == 4
    assert losses[0] < 1e-2
    assert losses[3] == pytest.approx(math.log(1 + math.exp(-0.1) + math.exp((1 / math.sqrt(2) - 1) / 10)), abs=1e-5)
    assert float(_loss(A_REPS, A_TYPES, 1e4)) == pytest.approx(math.log(3), abs=1e-3)
    with pytest.raises(ValueError):
        _loss(A_REPS, A_TYPES, 0.0)


def test_keys_leave_out_the_same_mention():
    # v1 is the same mention as v0 (seen in another prompt): v0 and v1 lose their only positive,
    # and no anchor is left: the loss is 0.
    assert float(_loss(A_REPS, A_TYPES, 1.0, keys=torch.tensor([7, 7, 8, 9]))) == 0.0
    # distinct keys: as without keys
    assert float(_loss(A_REPS, A_TYPES, 1.0, keys=torch.tensor([1, 2, 3, 4]))) == pytest.approx(A_LOSS, abs=1e-5)


def test_span_representations_mean_pool():
    hidden = torch.arange(12, dtype=torch.float32).reshape(6, 2)  # row i = (2i, 2i + 1)
    reps = span_representations(hidden, [(0, 1), (1, 4), (5, 6)])
    assert reps.tolist() == [[0.0, 1.0], [4.0, 5.0], [10.0, 11.0]]
    assert span_representations(hidden, []).shape == (0, 2)
    for bad in [(2, 2), (5, 7), (-1, 1)]:
        with pytest.raises(ValueError):
            span_representations(hidden, [bad])
