"""``calibrate``: choose which members' spans to accept (``accept_finder_sets``) on labelled dev data."""
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import srsly
import typer
from wasabi import msg

from ..calibration import calibrate_finder_sets
from .predictions import read_prediction_rows


def read_rows(path: Path) -> List[Dict[str, Any]]:
    """The lines of a ``predictions-*.jsonl``, with the keys calibration needs checked."""
    return read_prediction_rows(path, ("gold", "candidates"))


def _renames(items: List[str]) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for item in items:
        old, sep, new = item.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise ValueError(f"--rename takes OLD=NEW, got {item!r}")
        out[old.strip()] = new.strip()
    return out


def calibrate(
    predictions: Path = typer.Argument(..., help="predictions-ensemble.jsonl of a run with the union (evaluate --save-predictions) on labelled dev data"),
    output: Optional[Path] = typer.Option(None, "--output", help="Also write the calibration to this JSON file"),
    samples: int = typer.Option(2000, "--samples", help="Bootstrap samples (calibrated vs union)"),
    seed: int = typer.Option(0, "--seed", help="Random seed"),
    rename: List[str] = typer.Option([], "--rename", help="OLD=NEW: print member OLD (as named in the run) as NEW, your config's name for it"),
) -> None:
    """Precision of the spans found by each set of members, and the sets worth accepting.

    Run the ensemble once on a labelled dev sample with the union (the default), then pass the
    printed ``accept_finder_sets`` to the component (config or ``evaluate --set``). Use data the
    members (and adapters) were not trained on, and test on other data.
    """
    try:
        names = _renames(rename)
        res = calibrate_finder_sets(read_rows(predictions), samples=samples, seed=seed)
        unknown = sorted(set(names) - set(res["members"]))
        if unknown:
            raise ValueError(f"--rename names members that are not in the run: {unknown}; its members: {res['members']}")
    except ValueError as err:
        msg.fail(str(err), exits=1)
        return
    rows = [
        ("yes" if s["accepted"] else "no", " + ".join(s["members"]), s["right"], s["wrong"], s["precision"], s["prefix_f1"])
        for s in res["finder_sets"]
    ]
    msg.table(rows, header=("accept", "found by", "right", "wrong", "P %", "F1 up to here"), divider=True)
    b = res["bootstrap"]
    msg.info(
        f"{res['sentences']} sentences: union F1 {res['f1_union']:.1f}, calibrated {res['f1_calibrated']:.1f} "
        f"({b['diff']:+.1f}, 95% interval {b['ci_low']:+.1f} to {b['ci_high']:+.1f}; measured on the data it was chosen on)"
    )
    if not res["accept_finder_sets"]:
        msg.good("Every finder set pays: keep the union (accept_finder_sets = [], the default)")
    else:
        value = json.dumps([sorted(names.get(m, m) for m in s) for s in res["accept_finder_sets"]])
        # plain echo: wrapped lines could not be pasted into a config
        typer.echo(f"config:   accept_finder_sets = {value}")
        if not names:  # evaluate names the members as the run did
            typer.echo(f"evaluate: --set 'accept_finder_sets={value}'")
    if output is not None:
        srsly.write_json(output, {"predictions": str(predictions), "samples": samples, "seed": seed, **res})
        msg.good(f"Wrote {output}")
