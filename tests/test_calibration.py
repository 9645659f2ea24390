"""Choosing accept_finder_sets from a union run's saved predictions."""
import pytest

from spacy_el4ner.calibration import (
    calibrate_finder_sets, calibrate_min_confidence, finder_set_counts, keep_finder_sets, replay_counts,
)


def _cand(start, end, label, by, confidence=0.9, accepted=True):
    return {"start": start, "end": end, "label": label, "extracted_by": by, "confidence": confidence, "accepted": accepted}


def _rows(n_sentences=40):
    """A is precise (its lone spans right 3 times in 4), B is noisy (its lone spans always wrong),
    spans both found are right."""
    rows = []
    for i in range(n_sentences):
        gold = [[0, 4, "PER", "xxxx"], [10, 14, "LOC", "yyyy"]]
        cands = [_cand(0, 4, "PER", ["A", "B"])]
        cands.append(_cand(10, 14, "LOC", ["A"]) if i % 4 else _cand(10, 14, "ORG", ["A"]))
        cands.append(_cand(20, 24, "PER", ["B"]))  # never gold
        cands.append(_cand(30, 34, "PER", ["B"], accepted=False))  # rejected: not counted
        rows.append({"text": "t" * 40, "gold": gold, "predicted": [], "candidates": cands})
    return rows


def test_finder_set_counts_and_replay():
    rows = _rows(4)
    counts = finder_set_counts(rows)
    assert counts[frozenset({"A", "B"})]["right"] == 4
    assert counts[frozenset({"A"})] == {"right": 3, "wrong": 1}
    assert counts[frozenset({"B"})] == {"wrong": 4}
    # keeping only A's spans: tp 7, fp 1, fn 1 over the four sentences
    kept = replay_counts(rows, lambda c: "A" in c["extracted_by"])
    assert [sum(c[i] for c in kept) for i in range(3)] == [7, 1, 1]


def test_calibration_drops_the_noisy_members_lone_spans():
    res = calibrate_finder_sets(_rows(), samples=200)
    assert sorted(map(tuple, res["accept_finder_sets"])) == [("A",), ("A", "B")]
    assert res["f1_calibrated"] > res["f1_union"]
    assert res["bootstrap"]["diff"] > 0
    by = {tuple(s["members"]): s for s in res["finder_sets"]}
    assert by[("B",)]["accepted"] is False and by[("B",)]["precision"] == 0.0
    assert res["members"] == ["A", "B"] and res["sentences"] == 40


def test_calibration_keeps_the_union_when_every_set_pays():
    rows = _rows()
    for row in rows:
        row["gold"].append([20, 24, "PER", "zzzz"])  # B's lone spans are now right
    res = calibrate_finder_sets(rows, samples=50)
    assert res["accept_finder_sets"] == []
    assert res["f1_calibrated"] == res["f1_union"]


def test_calibration_adds_unseen_supersets_of_chosen_sets():
    rows = _rows()
    for row in rows:  # a third member C, only ever alone and wrong
        row["candidates"].append(_cand(36, 39, "LOC", ["C"]))
    res = calibrate_finder_sets(rows, samples=50)
    chosen = sorted(map(tuple, res["accept_finder_sets"]))
    # A + C, A + B + C were never seen: accepted as supersets of {A}; B + C is not
    assert ("A", "C") in chosen and ("A", "B", "C") in chosen
    assert ("B", "C") not in chosen and ("C",) not in chosen and ("B",) not in chosen


def test_calibration_errors():
    with pytest.raises(ValueError, match="no sentences"):
        calibrate_finder_sets([])
    rows = [{"text": "a", "gold": [], "predicted": [], "candidates": [_cand(0, 1, "PER", ["A"], accepted=False)]}]
    with pytest.raises(ValueError, match="no accepted candidate"):
        calibrate_finder_sets(rows)


def _threshold_rows(n_sentences=40):
    """Right spans score 0.5-0.6, wrong ones 0.35-0.42 (an adapted verifier's narrow band): a
    threshold between them beats the run's own 0.3."""
    rows = []
    for i in range(n_sentences):
        gold = [[0, 4, "PER", "xxxx"]]
        cands = [_cand(0, 4, "PER", ["A"], confidence=0.5 + 0.1 * (i % 2)), _cand(10, 14, "PER", ["A"], confidence=0.35 + 0.07 * (i % 2))]
        rows.append({"text": "t" * 20, "gold": gold, "predicted": [], "candidates": cands})
    return rows


def test_min_confidence_separates_a_narrow_band():
    res = calibrate_min_confidence(_threshold_rows(), samples=50)
    assert res["min_confidence"] == 0.425  # the first grid value above every wrong span
    assert res["f1_before"] == pytest.approx(100 * 2 / 3, abs=0.01) and res["f1_after"] == 100.0
    assert res["bootstrap"]["diff"] > 0
    # the table starts where a threshold first drops something and stops once nothing is left
    assert res["thresholds"][0][0] == pytest.approx(0.375) and res["thresholds"][-1][1] == 0.0


def test_min_confidence_none_when_nothing_beats_the_run():
    rows = _threshold_rows()
    for row in rows:
        row["gold"].append([10, 14, "PER", "yyyy"])  # every candidate right: any threshold loses
    res = calibrate_min_confidence(rows, samples=20)
    assert res["min_confidence"] is None and res["f1_after"] == res["f1_before"] == 100.0


def test_min_confidence_respects_the_kept_sets():
    rows = _threshold_rows()
    # B's spans are all wrong but confident: dropped by the finder-set rule, not by a threshold
    for row in rows:
        row["candidates"].append(_cand(20, 24, "PER", ["B"], confidence=0.95))
    kept = calibrate_min_confidence(rows, keep=keep_finder_sets([frozenset({"A"})]), samples=20)
    assert kept["f1_after"] == 100.0
    every = calibrate_min_confidence(rows, samples=20)
    assert every["f1_after"] < 100.0
    with pytest.raises(ValueError, match="no sentences"):
        calibrate_min_confidence([])


def test_min_confidence_within_noise_is_not_kept():
    rows = []
    for i in range(40):
        cands = [_cand(0, 4, "PER", ["A"], confidence=0.5)]
        if i == 0:
            cands.append(_cand(10, 14, "PER", ["A"], confidence=0.35))  # one wrong span in 40 sentences
        rows.append({"text": "t" * 20, "gold": [[0, 4, "PER", "xxxx"]], "predicted": [], "candidates": cands})
    res = calibrate_min_confidence(rows, samples=500)
    assert res["best_threshold"] == 0.375 and res["f1_best"] > res["f1_before"]
    assert res["bootstrap"]["p_not_better"] > 0.1
    assert res["min_confidence"] is None and res["f1_after"] == res["f1_before"]
    assert calibrate_min_confidence(rows, samples=500, max_p=1.0)["min_confidence"] == 0.375
    with pytest.raises(ValueError, match="max_p"):
        calibrate_min_confidence(rows, max_p=2.0)
