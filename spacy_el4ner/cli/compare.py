"""``compare``: is one evaluated run better than another on the same sentences?"""
from pathlib import Path
from typing import List, Optional, Tuple

import srsly
import typer
from wasabi import msg

from ..analysis import Counts, paired_bootstrap
from ..errors import Errors
from .predictions import read_prediction_rows


def read_predictions(path: Path) -> Tuple[List[str], List[Counts]]:
    """Read ``evaluate --save-predictions`` output.

    RETURNS: The sentences' texts and, per sentence, (tp, fp, fn) by exact span and label.
    """
    texts: List[str] = []
    counts: List[Counts] = []
    for row in read_prediction_rows(path, ("text", "gold", "predicted")):
        gold = {(int(g[0]), int(g[1]), str(g[2])) for g in row["gold"]}
        pred = {(int(p[0]), int(p[1]), str(p[2])) for p in row["predicted"]}
        texts.append(str(row["text"]))
        counts.append((len(pred & gold), len(pred - gold), len(gold - pred)))
    return texts, counts


def compare(
    run_a: Path = typer.Argument(..., help="predictions-*.jsonl of run A (evaluate --save-predictions)"),
    run_b: Path = typer.Argument(..., help="predictions-*.jsonl of run B, same data and sentences"),
    samples: int = typer.Option(2000, "--samples", help="Bootstrap samples"),
    seed: int = typer.Option(0, "--seed", help="Random seed"),
    output: Optional[Path] = typer.Option(None, "--output", help="Also write the numbers to this JSON file"),
) -> None:
    """Paired bootstrap over sentences: micro F1 of A minus B, with a 95% interval."""
    try:
        texts_a, a = read_predictions(run_a)
        texts_b, b = read_predictions(run_b)
        if texts_a != texts_b:
            bad = next((i for i, (x, y) in enumerate(zip(texts_a, texts_b)) if x != y), min(len(texts_a), len(texts_b)))
            raise ValueError(Errors.E613.format(n=bad + 1, n_a=len(texts_a), n_b=len(texts_b)))
        res = paired_bootstrap(a, b, samples=samples, seed=seed)
    except ValueError as err:
        msg.fail(str(err), exits=1)
        return
    msg.info(
        f"{res['sentences']} sentences: F1 A {res['f1_a']:.1f}, B {res['f1_b']:.1f}, A - B {res['diff']:+.1f} "
        f"(95% interval {res['ci_low']:+.1f} to {res['ci_high']:+.1f}; A not better in {100 * res['p_not_better']:.0f}% of {samples} resamples)"
    )
    if output is not None:
        srsly.write_json(output, {"run_a": str(run_a), "run_b": str(run_b), "samples": samples, "seed": seed, **res})
