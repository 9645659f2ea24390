"""The annotation loop's learning curve: F1 on a fixed held-out sample against the number of
corrected sentences, with the corrections fed to the store live, and without.

A simulated annotator (the gold labels of WNUT-17 dev, or CrossNER politics dev) corrects the suggestions one sentence at a
time, starting from a store of 5 training sentences. Its corrected sentence is the gold one, made
into a demonstration exactly as `review` does on "accept" (task -> checked spans -> Doc ->
``add_demonstrations``). At each checkpoint the pipeline with the store as it stands annotates the
held-out sample. Without live feeding the store stays at the 5 seed sentences for the whole
session, so its held-out F1 is the seed store's at every checkpoint.

``--stream-eval N``: the first N stream sentences also go through the real review loop
(``Review.next_task`` suggests each one lazily, ``Review.answer`` saves the gold answer in SQLite
and feeds the store), and the suggestions are scored against the gold: how many span corrections
the annotator had to make, live against a store that never grows.

    OMP_NUM_THREADS=1 nice python benchmarks/annotation_curve.py --stream-eval 50

Writes benchmarks/results/annotation/annotation_curve.json (after every checkpoint, so a stopped run keeps
what it measured), an SVG and, where Chromium is installed, a PNG of it.
"""
import argparse
import json
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence, Set, Tuple

import spacy
from spacy.tokens import Doc
from spacy.training import Example

from spacy_el4ner.annotate.db import Database
from spacy_el4ner.annotate.review import Review
from spacy_el4ner.annotate.tasks import clean_spans, doc_from_example, task_from_doc
from spacy_el4ner.readers import read_docs
from spacy_el4ner.registry import DEFAULT_MEMBERS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results" / "annotation"
DATASETS = {  # name: (folder, train file, dev file, labels in prompt order; None: as they first appear in train)
    "wnut17": ("wnut17", "train.conll", "dev.conll", ["person", "location", "group", "corporation", "product", "creative-work"]),
    "politics": ("crossner/politics", "train.txt", "dev.txt", None),
}
Ent = Tuple[int, int, str]


def ents(doc: Doc) -> Set[Ent]:
    return {(e.start_char, e.end_char, e.label_) for e in doc.ents}


def prf(pairs: Sequence[Tuple[Set[Ent], Set[Ent]]]) -> Dict[str, float]:
    tp = sum(len(p & g) for p, g in pairs)
    n_pred = sum(len(p) for p, _ in pairs)
    n_gold = sum(len(g) for _, g in pairs)
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"p": round(p, 4), "r": round(r, 4), "f1": round(f, 4), "tp": tp, "pred": n_pred, "gold": n_gold,
            "corrections": n_pred + n_gold - 2 * tp}


def gold_spans(gold: Doc) -> List[Dict]:
    return [{"start": e.start_char, "end": e.end_char, "label": e.label_} for e in gold.ents]


def as_demonstration(nlp, gold: Doc, labels: Sequence[str]) -> Doc:
    """The gold sentence as `review` stores an accepted answer."""
    task = task_from_doc(nlp.make_doc(gold.text))
    return doc_from_example(nlp.vocab, {**task, "spans": clean_spans(task, gold_spans(gold), labels)})


def evaluate(nlp, golds: List[Doc], batch_size: int) -> Dict[str, float]:
    preds = nlp.pipe([g.text for g in golds], batch_size=batch_size)
    return prf([(ents(p), ents(g)) for p, g in zip(preds, golds)])


def svg(curve: List[Dict], without: Dict, path: Path, title: str) -> None:
    """A line chart: checkpoints evenly spaced on x, F1 on y (ticks every 0.1)."""
    w, h, left, right, top, bottom = 720, 420, 70, 40, 50, 60
    xs = [c["n"] for c in curve]
    ymax = max(0.1, int(max([c["f1"] for c in curve] + [without["f1"]]) * 10 + 2) / 10)
    px = lambda i: left + 30 + i * (w - left - right - 30) / max(1, len(xs) - 1)  # noqa: E731
    py = lambda v: top + (1 - v / ymax) * (h - top - bottom)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="Helvetica, Arial, sans-serif">',
           f'<rect width="{w}" height="{h}" fill="#fff"/>',
           f'<text x="{w / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{title}</text>']
    for k in range(int(round(ymax * 10)) + 1):
        v = k / 10
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 8}" y="{py(v) + 4:.1f}" text-anchor="end" font-size="12">{v:.1f}</text>')
    for i, n in enumerate(xs):
        out.append(f'<text x="{px(i):.1f}" y="{h - bottom + 20}" text-anchor="middle" font-size="12">{n}</text>')
    out.append(f'<text x="{w / 2}" y="{h - 15}" text-anchor="middle" font-size="13">corrected sentences (store: 5 seed + n)</text>')
    out.append(f'<text x="18" y="{h / 2}" text-anchor="middle" font-size="13" transform="rotate(-90 18 {h / 2})">F1, held-out sample</text>')
    flat = " ".join(f"{px(i):.1f},{py(without['f1']):.1f}" for i in range(len(xs)))
    out.append(f'<polyline points="{flat}" fill="none" stroke="#999" stroke-width="2.5" stroke-dasharray="7 5"/>')
    live = " ".join(f"{px(i):.1f},{py(c['f1']):.1f}" for i, c in enumerate(curve))
    out.append(f'<polyline points="{live}" fill="none" stroke="#583fcf" stroke-width="3"/>')
    for i, c in enumerate(curve):
        out.append(f'<circle cx="{px(i):.1f}" cy="{py(c["f1"]):.1f}" r="4.5" fill="#583fcf"/>')
        out.append(f'<text x="{px(i):.1f}" y="{py(c["f1"]) - 10:.1f}" text-anchor="middle" font-size="12">{c["f1"]:.3f}</text>')
    out.append(f'<line x1="{w - 250}" x2="{w - 220}" y1="{top + 10}" y2="{top + 10}" stroke="#583fcf" stroke-width="3"/>'
               f'<text x="{w - 212}" y="{top + 14}" font-size="12">fed to the store live</text>')
    out.append(f'<line x1="{w - 250}" x2="{w - 220}" y1="{top + 30}" y2="{top + 30}" stroke="#999" stroke-width="2.5" '
               f'stroke-dasharray="7 5"/><text x="{w - 212}" y="{top + 34}" font-size="12">not fed (seed store only)</text>')
    out.append("</svg>")
    path.write_text("\n".join(out), encoding="utf8")


def png(svg_path: Path, png_path: Path) -> bool:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        return False
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                        f"--screenshot={png_path}", "--window-size=720,420", "--hide-scrollbars", svg_path.resolve().as_uri()],
                       check=False, capture_output=True, timeout=120)
    return png_path.exists()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help="Folder with wnut17/{train,dev}.conll")
    ap.add_argument("--members", default=",".join(DEFAULT_MEMBERS))
    ap.add_argument("--heldout", type=int, default=50)
    ap.add_argument("--checkpoints", default="0,5,20,50,100,200")
    ap.add_argument("--seed-store", type=int, default=5)
    ap.add_argument("--stream-eval", type=int, default=0, help="Suggest and score the first N stream sentences (the real loop)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--output", type=Path, default=None, help="Default: results/annotation/annotation_curve-DATASET.json")
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="wnut17")
    ap.add_argument("--plot-only", action="store_true", help="Draw the SVG/PNG of an existing --output and stop")
    args = ap.parse_args()
    args.output = args.output or RESULTS / f"annotation_curve-{args.dataset}.json"
    if args.plot_only:
        plot(json.loads(args.output.read_text(encoding="utf8")), args.output)
        return
    checkpoints = [int(x) for x in args.checkpoints.split(",")]
    rng = random.Random(args.seed)
    blank = spacy.blank("en")
    folder, train_file, dev_file, labels = DATASETS[args.dataset]
    dev = read_docs(args.data / folder / dev_file, blank)
    train = read_docs(args.data / folder / train_file, blank)
    labels = labels or list(dict.fromkeys(e.label_ for d in train + dev for e in d.ents))
    order = list(range(len(dev)))
    rng.shuffle(order)
    heldout = [dev[i] for i in order[: args.heldout]]
    stream = [dev[i] for i in order[args.heldout: args.heldout + max(checkpoints)]]
    seeds = rng.sample([d for d in train if d.ents], args.seed_store)

    nlp = spacy.blank("en")
    nlp.add_pipe("el4ner", config={"labels": labels, "ensemble": {"@el4ner_members": "el4ner.Ensemble.v1", "models": args.members.split(",")}})
    nlp.initialize(get_examples=lambda: [Example(nlp.make_doc(d.text), d) for d in seeds])
    pipe = nlp.get_pipe("el4ner")
    result: Dict = {
        "what": f"F1 (exact span match, micro) on a fixed held-out sample of {args.dataset} dev against the number of "
                "corrected sentences; a simulated annotator (the gold labels) corrects dev sentences one at a time",
        "dataset": args.dataset, "members": args.members.split(","), "labels": labels, "seed": args.seed, "seed_store": args.seed_store,
        "heldout": len(heldout), "heldout_entities": sum(len(d.ents) for d in heldout), "stream": len(stream),
        "curve": [], "without": None, "stream_eval": None, "seconds": 0.0,
        "config": "the component's defaults (SentenceSimRetriever, validation on) with these members",
        "date": time.strftime("%Y-%m-%d"),
    }
    start = time.perf_counter()

    def save() -> None:
        result["seconds"] = round(time.perf_counter() - start, 1)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf8")

    live_pairs: List[Tuple[Set[Ent], Set[Ent]]] = []
    n_review = min(args.stream_eval, len(stream))
    if n_review:  # the suggestions a store that never grows makes for the same sentences
        static = nlp.pipe([g.text for g in stream[:n_review]], batch_size=args.batch_size)
        static_pairs = [(ents(p), ents(g)) for p, g in zip(static, stream[:n_review])]
        result["stream_eval"] = {"sentences": n_review, "not_fed": prf(static_pairs)}
        save()
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "curve.db")
        review = Review(nlp, db, "curve", [(g.text, {}) for g in stream[:n_review]])
        fed = 0
        for n in checkpoints:
            while fed < n:
                gold = stream[fed]
                if fed < n_review:  # the real loop: suggested lazily, answered, fed to the store
                    task = review.next_task()
                    assert task is not None and task["text"] == gold.text
                    live_pairs.append(({(s["start"], s["end"], s["label"]) for s in task["spans"]}, ents(gold)))
                    review.answer(str(task["_input_hash"]), "accept", gold_spans(gold))
                else:
                    pipe.add_demonstrations([as_demonstration(nlp, gold, labels)])
                fed += 1
            if n_review and live_pairs:
                result["stream_eval"]["fed_live"] = prf(live_pairs)
            t = time.perf_counter()
            scores = evaluate(nlp, heldout, args.batch_size)
            scores.update({"n": n, "store": len(pipe.store), "eval_seconds": round(time.perf_counter() - t, 1)})
            result["curve"].append(scores)
            if n == 0:
                result["without"] = {**scores, "note": "the store never grows: this F1 holds at every checkpoint"}
            print(json.dumps(scores), flush=True)
            save()
        db.close()
    plot(result, args.output)
    save()


def plot(result: Dict, output: Path) -> None:
    svg_path = output.with_suffix(".svg")
    name = {"wnut17": "WNUT-17", "politics": "CrossNER politics"}.get(result.get("dataset", "wnut17"), result.get("dataset"))
    svg(result["curve"], result["without"], svg_path, f"el4ner on {name}: corrections fed to the store live")
    result["png"] = png(svg_path, output.with_suffix(".png"))


if __name__ == "__main__":
    main()
