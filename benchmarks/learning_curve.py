"""Which to use when: F1 against the number of labelled sentences, for spaCy's own NER trained on
them, the LLM ensemble with them as its demonstration store, and the two together.

For each dataset and size N, the first N training sentences (with the dataset's whole label set)
    1. fill a store (``store build --limit N``),
    2. train spaCy's NER (``train-member``: CNN tok2vec, ``spacy train``, 20% of the N held out for
       early stopping),
and the first ``--test-limit`` test sentences are annotated by
    - ``spacy``: the trained spaCy NER alone (as the only member, no validation: its own entities),
    - ``llm``: the default LLM pair with the store,
    - ``combined``: the pair with the trained spaCy NER as a third member, last (ties go to the LLMs),
      the shipped acceptance rules.

Every step resumes: stores and trained members are kept, model answers are cached and each
evaluation checkpoints, so the same command goes on where it stopped.

    python benchmarks/learning_curve.py run --datasets wnut17 ncbi --sizes 10 20 50 100 200 500
    python benchmarks/learning_curve.py run --datasets politics --sizes 10 20 50 100 200 --test-limit 100
    python benchmarks/learning_curve.py report

``report`` collects the finished runs into ``results/learning-curve/learning-curve.json``, a
Markdown table (``learning-curve.md``) and a plot (``learning-curve.png``, needs matplotlib).
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

HERE = Path(__file__).resolve().parent
WORK = HERE / "runs" / "learning-curve"
OUT = HERE / "results" / "learning-curve"
PAIR = "qwen2.5-coder-0.5b-instruct,smollm2-135m-instruct"
SYSTEMS = ("spacy", "llm", "combined")
NAMES = {"spacy": "spaCy NER alone", "llm": "LLM pair alone", "combined": "LLM pair + spaCy NER"}
FILES = {
    "wnut17": ("wnut17/train.conll", "wnut17/test.conll", "WNUT-17"),
    "politics": ("crossner/politics/train.txt", "crossner/politics/test.txt", "CrossNER politics"),
    "ncbi": ("ncbi-disease/train.tsv", "ncbi-disease/test.tsv", "NCBI-disease"),
}


def el4ner(*args: str) -> None:
    cmd = [sys.executable, "-m", "spacy_el4ner", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def all_labels(path: Path) -> List[str]:
    import spacy

    from spacy_el4ner.readers import read_docs

    return sorted({e.label_ for d in read_docs(path, spacy.blank("en")) for e in d.ents})


def run(args: argparse.Namespace) -> None:
    data = Path(args.data)
    for ds in args.datasets:
        train, test, _ = FILES[ds]
        labels = ",".join(all_labels(data / train))
        n_train = sum(1 for _ in open(data / train, encoding="utf-8") if not _.strip()) + 1
        for n in args.sizes:
            if n > n_train:
                print(f"skip {ds} {n}: the training split has about {n_train} sentences", flush=True)
                continue
            store = WORK / "stores" / f"{ds}-{n}"
            member = WORK / "members" / f"{ds}-{n}"
            if not (store / "meta.json").exists():
                el4ner("store", "build", str(data / train), "--limit", str(n), "--labels", labels, "-o", str(store))
            if not (member / "model-best" / "meta.json").exists():
                started = time.time()
                el4ner("train-member", "--store", str(store), "--output", str(member))
                (member / "train-seconds.txt").write_text(f"{time.time() - started:.0f}\n")
            spacy_member = f"spacy:{member / 'model-best'}"
            for system in args.systems:
                extra = {
                    "spacy": ["--members", spacy_member, "--set", "validate=null"],
                    "llm": ["--members", PAIR],
                    "combined": ["--members", f"{PAIR},{spacy_member}"],
                }[system]
                el4ner(
                    "evaluate", str(data / test), "--store", str(store), "--limit", str(args.test_limit),
                    "--variants", "none", "--cache", str(WORK / "cache"), "--save-predictions",
                    "--output", str(WORK / "runs" / f"{ds}-{n}-{system}"), "--name", f"{ds}-{n}-{system}", *extra,
                )


def collect() -> Dict:
    table: Dict = {}
    for path in sorted((WORK / "runs").glob("*/results.json")):
        ds, n, system = path.parent.name.rsplit("-", 2)
        res = json.loads(path.read_text(encoding="utf-8"))
        run = res["results"]["ensemble"]
        seconds = WORK / "members" / f"{ds}-{n}" / "train-seconds.txt"
        entry = table.setdefault(ds, {}).setdefault(n, {})
        entry[system] = {k: run[k] for k in ("p", "r", "f", "n_sentences", "sec_per_sentence")}
        if system == "spacy" and seconds.exists():
            entry[system]["train_seconds"] = int(seconds.read_text())
        entry["_test_sentences"] = run["n_sentences"]
        entry["_gold_entities"] = run.get("stages", {}).get("gold")
    return {
        ds: {int(n): v for n, v in sorted(table[ds].items(), key=lambda kv: int(kv[0]))}
        for ds in FILES if ds in table  # in FILES' order
    }


def report(args: argparse.Namespace) -> None:
    table = collect()
    OUT.mkdir(parents=True, exist_ok=True)
    doc = {
        "command": "python benchmarks/learning_curve.py run ...; python benchmarks/learning_curve.py report",
        "training_sentences": "the first N of each training split (CrossNER politics has 200); the same N fill the "
        "store and train spaCy's NER (20% of them held out for its early stopping)",
        "members": PAIR.split(","),
        "systems": NAMES,
        "f1": table,
    }
    (OUT / "learning-curve.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    lines = ["| dataset | test sentences (gold entities) | labelled sentences | " + " | ".join(NAMES[s] for s in SYSTEMS) + " |",
             "|---|---|---|" + "---|" * len(SYSTEMS)]
    for ds, sizes in table.items():
        for n, entry in sizes.items():
            cells = [f"{entry[s]['f']:.1f}" if s in entry else "–" for s in SYSTEMS]
            done = all(s in entry for s in SYSTEMS)
            best = max(entry[s]["f"] for s in SYSTEMS) if done else None  # bold only among all three
            cells = [f"**{c}**" if best is not None and c != "–" and float(c) == best else c for c in cells]
            lines.append(f"| {FILES[ds][2]} | {entry['_test_sentences']} ({entry['_gold_entities']}) | {n} | " + " | ".join(cells) + " |")
    (OUT / "learning-curve.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return
    fig, axes = plt.subplots(1, len(table), figsize=(4.2 * len(table), 3.6), sharey=True, squeeze=False)
    styles = {"spacy": ("tab:orange", "s"), "llm": ("tab:blue", "o"), "combined": ("tab:green", "^")}
    for ax, (ds, sizes) in zip(axes[0], table.items()):
        for system in SYSTEMS:
            pts = [(n, e[system]["f"]) for n, e in sizes.items() if system in e]
            if pts:
                color, marker = styles[system]
                ax.plot(*zip(*pts), marker=marker, color=color, label=NAMES[system])
        n_test = max(e["_test_sentences"] for e in sizes.values())
        ax.set_title(f"{FILES[ds][2]} (test, first {n_test})")
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xlim(8, 620)
        ax.set_xticks(list(sizes))
        ax.set_xticklabels([str(n) for n in sizes])
        ax.set_xlabel("labelled sentences")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("F1")
    axes[0][0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "learning-curve.png", dpi=110)
    print(f"-> {OUT / 'learning-curve.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--datasets", nargs="+", default=list(FILES), choices=list(FILES))
    r.add_argument("--sizes", nargs="+", type=int, default=[10, 20, 50, 100, 200, 500])
    r.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    r.add_argument("--test-limit", type=int, default=200)
    r.add_argument("--data", default=os.environ.get("EL4NER_DATA", str(HERE.parent.parent / "shared" / "data")))
    sub.add_parser("report")
    args = parser.parse_args()
    run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    main()
