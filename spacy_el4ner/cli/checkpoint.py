"""Checkpoints of an ``evaluate`` run that outlive the machine it ran on.

The response cache (``--cache``) resumes an interrupted run on the same machine. A run that takes
longer than one working session on a machine that does not keep its files needs more: after
every batch, :class:`Checkpoint` appends the batch's sentences to ``OUTPUT/partial-VARIANT.jsonl``
(the rows of ``predictions-VARIANT.jsonl``: text, gold, predicted entities, every candidate with
its details) and rewrites ``OUTPUT/partial-VARIANT.json`` (the run's settings, how many sentences
are done, and the time and model counters so far). Commit both, and ``evaluate`` with the same
arguments on a fresh clone goes on from the first sentence not done. The finished run deletes
them.

Done sentences are rebuilt from their rows (:func:`examples_from_rows`), so the final scores, the
stage breakdown and ``predictions-VARIANT.jsonl`` cover the whole split. The time per sentence
sums the time of every segment; ``segments`` in the results says which sentences ran when and on
which machine.
"""
import json
import logging
import os
import platform
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence, Tuple

from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example
from spacy.vocab import Vocab

from ..errors import Errors

logger = logging.getLogger("spacy_el4ner")

# Counters that are summed over the segments of a run.
COUNTERS = ("elapsed", "forward_passes", "prompt_tokens", "generated_tokens", "cache_hits", "unaligned", "trimmed",
            "units", "units_with_query_spans")


def prediction_rows(examples: Iterable[Example], spans_key: str) -> List[Dict[str, Any]]:
    """One dict per sentence: its text, gold and predicted entities as [start, end, label, text]
    (character offsets), and every candidate in ``doc.spans[spans_key]`` with its details."""
    rows = []
    for eg in examples:
        group = eg.predicted.spans.get(spans_key)
        details = list(group.attrs.get("details", [])) if group is not None else []
        rows.append({
            "text": eg.reference.text,
            "gold": [[e.start_char, e.end_char, e.label_, e.text] for e in eg.reference.ents],
            "predicted": [[e.start_char, e.end_char, e.label_, e.text] for e in eg.predicted.ents],
            "candidates": [{"start": s.start_char, "end": s.end_char, **d} for s, d in zip(group or [], details)],
        })
    return rows


def examples_from_rows(rows: Sequence[Dict[str, Any]], refs: Sequence[Doc], vocab: Vocab, spans_key: str) -> List[Example]:
    """Rebuild the examples that :func:`prediction_rows` wrote: predicted docs with the reference
    docs' tokens, the predicted entities and the candidate group (with its details).

    RAISES (ValueError): If a row's text is not its reference's, or a span does not fall on the
        reference's token boundaries (the rows come from another tokenisation or split).
    """
    examples: List[Example] = []
    for i, (row, ref) in enumerate(zip(rows, refs)):
        if row["text"] != ref.text:
            raise ValueError(Errors.E610.format(n=i + 1, found=row["text"][:60], expected=ref.text[:60]))
        doc = Doc(vocab, words=[t.text for t in ref], spaces=[bool(t.whitespace_) for t in ref])

        def span(start: int, end: int, label: str) -> Span:
            out = doc.char_span(int(start), int(end), label=label)
            if out is None:
                raise ValueError(Errors.E611.format(n=i + 1, start=start, end=end, text=ref.text[:60]))
            return out

        doc.ents = [span(p[0], p[1], str(p[2])) for p in row["predicted"]]
        cands = row.get("candidates") or []
        group = SpanGroup(doc, name=spans_key, spans=[span(c["start"], c["end"], str(c.get("label") or "none")) for c in cands])
        group.attrs["details"] = [{k: v for k, v in c.items() if k not in ("start", "end")} for c in cands]
        group.attrs["scores"] = [c.get("confidence") for c in cands]
        doc.spans[spans_key] = group
        examples.append(Example(doc, ref))
    return examples


class Checkpoint:
    """The done part of one variant of an ``evaluate`` run, on disk next to its results.

    output (Path): The run's output folder.
    slug (str): The variant's file-name form (as in ``predictions-SLUG.jsonl``).
    run (Dict[str, Any]): What must match for a checkpoint to be resumed (data, store, settings,
        members, number of sentences, ...).
    """

    def __init__(self, output: Path, slug: str, run: Dict[str, Any]) -> None:
        self.rows_path = output / f"partial-{slug}.jsonl"
        self.state_path = output / f"partial-{slug}.json"
        self.run = json.loads(json.dumps(run))  # as it reads back from JSON
        self.done = 0
        self.counters: Dict[str, float] = {k: 0 for k in COUNTERS}
        self.segments: List[Dict[str, Any]] = []

    def load(self) -> List[Dict[str, Any]]:
        """Read the checkpoint, if there is one for this run.

        RETURNS (List[Dict[str, Any]]): The rows of the sentences done (empty: start from the first).
            A checkpoint of another run, or one that cannot be read, is set aside with a warning.
        """
        if not self.state_path.exists():
            return []
        try:
            state = json.loads(self.state_path.read_text(encoding="utf8"))
            if state.get("run") != self.run:
                logger.warning("%s is a checkpoint of another run (other data, settings or members); starting over", self.state_path)
                return []
            done = int(state["done"])
            rows: List[Dict[str, Any]] = []
            with self.rows_path.open(encoding="utf8") as f:
                for line in f:
                    if len(rows) == done:
                        break  # a batch written after the state was: it runs again
                    rows.append(json.loads(line))
            if len(rows) < done:
                raise ValueError(Errors.E612.format(path=self.rows_path, n=len(rows), done=done))
            counters = {k: state["counters"].get(k, 0) for k in COUNTERS}
            segments = list(state.get("segments", []))
        except (OSError, ValueError, KeyError, TypeError) as err:
            logger.warning("Cannot resume from %s (%s); starting over", self.state_path, err)
            return []
        self.done, self.counters, self.segments = done, counters, segments
        self._rewrite(rows)  # drop any batch past the state
        return rows

    def start_segment(self) -> None:
        """Begin the part of the run made in this process."""
        self.segments.append({"first": self.done, "done": self.done, "seconds": 0.0, "machine": platform.node(),
                              "cpus": os.cpu_count()})

    def add(self, rows: Sequence[Dict[str, Any]], counters: Dict[str, float]) -> None:
        """Record a finished batch: its rows and the counters it added (``COUNTERS``)."""
        with self.rows_path.open("a", encoding="utf8") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.done += len(rows)
        for k in COUNTERS:
            self.counters[k] += counters.get(k, 0)
        if self.segments:
            self.segments[-1]["done"] = self.done
            self.segments[-1]["seconds"] = round(self.segments[-1]["seconds"] + counters.get("elapsed", 0.0), 2)
        self._save_state()

    def totals(self) -> Tuple[Dict[str, float], List[Dict[str, Any]]]:
        """RETURNS: The counters summed over every segment, and the segments."""
        return dict(self.counters), list(self.segments)

    def clear(self) -> None:
        """Delete the checkpoint (the run is finished and its results are written)."""
        for path in (self.rows_path, self.state_path):
            if path.exists():
                path.unlink()

    def _save_state(self) -> None:
        tmp = self.state_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"run": self.run, "done": self.done, "counters": self.counters, "segments": self.segments}, indent=1),
                       encoding="utf8")
        os.replace(tmp, self.state_path)

    def _rewrite(self, rows: Sequence[Dict[str, Any]]) -> None:
        with self.rows_path.open("w", encoding="utf8") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")


def seed_from_prefix(checkpoint: Checkpoint, rows: List[Dict[str, Any]], result: Dict[str, Any], source: str) -> None:
    """Start ``checkpoint`` from a finished run of the same evaluation on the first sentences of
    the data: its predictions ``rows`` and its ``result`` (from its results.json). The counters
    come from that run's per-sentence figures, which are rounded; the segment says so."""
    n = len(rows)
    per = {"elapsed": "sec_per_sentence", "forward_passes": "llm_calls_per_sentence",
           "prompt_tokens": "prompt_tokens_per_sentence", "generated_tokens": "generated_tokens_per_sentence"}
    counters: Dict[str, float] = {k: float(result.get(v, 0.0)) * n for k, v in per.items()}
    counters["cache_hits"] = result.get("cache_hits", 0)
    counters["unaligned"] = result.get("unaligned_answers", 0)
    counters["trimmed"] = result.get("trimmed", 0)
    counters["units"] = n
    counters["units_with_query_spans"] = float(result.get("query_span_units_pct", 0.0)) * n / 100
    checkpoint.clear()
    checkpoint.segments.append({"first": 0, "done": n, "seconds": round(counters["elapsed"], 2), "from": source,
                                "note": "counters from the per-sentence figures of that run (rounded)"})
    checkpoint.add(rows, counters)


def unit_counters(pipe: Any) -> Dict[str, float]:
    """The component's cumulative counters (``COUNTERS`` less ``elapsed``): model calls and tokens,
    unaligned answers, trimmed spans, retrieval units."""
    stats = pipe.model_stats()
    retrieval = getattr(pipe.retriever, "stats", {})  # RandomRetriever keeps none
    return {
        "forward_passes": sum(s.get("forward_passes", 0) for s in stats.values()),
        "prompt_tokens": sum(s.get("prompt_tokens", 0) for s in stats.values()),
        "generated_tokens": sum(s.get("generated_tokens", 0) for s in stats.values()),
        "cache_hits": sum(s.get("cache_hits", 0) for s in stats.values()),
        "unaligned": pipe.stats.get("unaligned", 0),
        "trimmed": pipe.stats.get("trimmed", 0),
        "units": retrieval.get("units", 0),
        "units_with_query_spans": retrieval.get("units_with_query_spans", 0),
    }
