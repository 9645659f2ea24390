"""``calibrate``: choose which members' spans to accept (``accept.finder_sets``) and the acceptance
threshold (``accept.min_confidence``) on labelled dev data."""
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import srsly
import typer
from wasabi import msg

from ..calibration import NothingToCalibrate, calibrate_finder_sets, calibrate_min_confidence, keep_finder_sets
from ..errors import Errors
from .predictions import read_prediction_rows


def read_rows(path: Path) -> List[Dict[str, Any]]:
    """The lines of a ``predictions-*.jsonl``, with the keys calibration needs checked."""
    return read_prediction_rows(path, ("gold", "candidates"))


def _renames(items: List[str]) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for item in items:
        old, sep, new = item.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise ValueError(Errors.E608.format(value=item))
        out[old.strip()] = new.strip()
    return out


def calibrate(
    predictions: Path = typer.Argument(..., help="predictions-ensemble.jsonl of a run with the union (evaluate --save-predictions) on labelled dev data"),
    output: Optional[Path] = typer.Option(None, "--output", help="Also write the calibration to this JSON file"),
    samples: int = typer.Option(2000, "--samples", help="Bootstrap samples (calibrated vs union)"),
    seed: int = typer.Option(0, "--seed", help="Random seed"),
    rename: List[str] = typer.Option([], "--rename", help="OLD=NEW: print member OLD (as named in the run) as NEW, your config's name for it"),
    threshold: bool = typer.Option(True, "--threshold/--no-threshold", help="Also choose accept.min_confidence (on the replay with the chosen sets)"),
    max_p: float = typer.Option(0.1, "--max-p", help="Keep the best threshold only if it beats the run's own in at least 1 - MAX_P of the bootstrap samples (1.0: any gain)"),
) -> None:
    """Precision of the spans found by each set of members, and the sets worth accepting.

    Run the ensemble once on a labelled dev sample with the union (the default), then pass the
    printed ``accept.finder_sets`` (and ``accept.min_confidence``) to the component (config,
    ``evaluate --set``, or the ``--output`` file to ``evaluate --calibration``). Use data the members (and adapters) were not trained on, and test on
    other data. A single member's run works too: it only gets a threshold.
    """
    try:
        names = _renames(rename)
        rows = read_rows(predictions)
        res = calibrate_finder_sets(rows, samples=samples, seed=seed)
        unknown = sorted(set(names) - set(res["members"]))
        if unknown:
            raise ValueError(Errors.E609.format(unknown=unknown, members=res["members"]))
        keep = keep_finder_sets([frozenset(s) for s in res["accept_finder_sets"]])
        thr = calibrate_min_confidence(rows, keep, samples=samples, seed=seed, max_p=max_p) if threshold else None
    except NothingToCalibrate as err:
        # a workflow goes on with the defaults (the union, the component's threshold) rather than stopping
        msg.warn(f"{err}: keep the defaults (accept.finder_sets = [], accept.min_confidence as configured)")
        if output is not None:
            srsly.write_json(output, {"predictions": str(predictions), "samples": samples, "seed": seed,
                                      "accept_finder_sets": [], "min_confidence": None, "sentences": len(rows),
                                      "nothing_to_calibrate": str(err)})
            msg.good(f"Wrote {output}")
        return
    except ValueError as err:
        msg.fail(str(err), exits=1)
        return
    table = [
        ("yes" if s["accepted"] else "no", " + ".join(s["members"]), s["right"], s["wrong"], s["precision"], s["prefix_f1"])
        for s in res["finder_sets"]
    ]
    msg.table(table, header=("accept", "found by", "right", "wrong", "P %", "F1 up to here"), divider=True)
    b = res["bootstrap"]
    msg.info(
        f"{res['sentences']} sentences: union F1 {res['f1_union']:.1f}, calibrated {res['f1_calibrated']:.1f} "
        f"({b['diff']:+.1f}, 95% interval {b['ci_low']:+.1f} to {b['ci_high']:+.1f}; measured on the data it was chosen on)"
    )
    if not res["accept_finder_sets"]:
        msg.good("Every finder set pays: keep the union (accept.finder_sets = [], the default)")
    else:
        value = json.dumps([sorted(names.get(m, m) for m in s) for s in res["accept_finder_sets"]])
        # plain echo: wrapped lines could not be pasted into a config
        typer.echo(f"config:   [components.el4ner.accept] finder_sets = {value}")
        if not names:  # evaluate names the members as the run did
            typer.echo(f"evaluate: --set 'accept.finder_sets={value}'")
    if thr is not None:
        b = thr["bootstrap"]
        grid = ", ".join(f"{t:.3f}: {f:.1f}" for t, f in thr["thresholds"][:16])
        msg.info(f"accept.min_confidence on the replay with those sets (F1 per threshold): {grid or 'no candidate below any threshold'}")
        if thr["best_threshold"] is None:
            msg.good(f"No higher threshold beats the run's own (F1 {thr['f1_before']:.1f}): keep accept.min_confidence as it was")
        else:
            msg.info(
                f"best accept.min_confidence {thr['best_threshold']}: F1 {thr['f1_before']:.1f} -> {thr['f1_best']:.1f} ({b['diff']:+.1f}, "
                f"95% interval {b['ci_low']:+.1f} to {b['ci_high']:+.1f}, not better in {100 * b['p_not_better']:.1f}% of "
                f"resamples; measured on the data it was chosen on)"
            )
        if thr["min_confidence"] is None and thr["best_threshold"] is not None:
            msg.good(f"That gain is within noise (--max-p {max_p}): keep accept.min_confidence as it was")
        elif thr["min_confidence"] is not None:
            typer.echo(f"config:   [components.el4ner.accept] min_confidence = {thr['min_confidence']}")
            typer.echo(f"evaluate: --set 'accept.min_confidence={thr['min_confidence']}'")
    if output is not None:
        extra = {} if thr is None else {"min_confidence": thr["min_confidence"], "threshold": thr}
        srsly.write_json(output, {"predictions": str(predictions), "samples": samples, "seed": seed, **res, **extra})
        msg.good(f"Wrote {output}")
