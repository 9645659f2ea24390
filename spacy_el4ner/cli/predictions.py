"""Reading the ``predictions-*.jsonl`` files that ``evaluate --save-predictions`` writes."""
import json
from pathlib import Path
from typing import Any, Dict, List, Sequence

from ..errors import Errors

# What each key must hold: spans as [start, end, label, ...]; candidates as dicts
_SPAN_KEYS = ("gold", "predicted")


def read_prediction_rows(path: Path, need: Sequence[str]) -> List[Dict[str, Any]]:
    """The lines of a predictions file, each checked for the keys in ``need`` (``text``,
    ``gold``, ``predicted``, ``candidates``).

    RAISES (ValueError): For a missing file, or a line that is not JSON or lacks a key (naming
        the line).
    """
    if not path.is_file():
        raise ValueError(Errors.E624.format(path=path))
    rows: List[Dict[str, Any]] = []
    with path.open(encoding="utf8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                for key in need:
                    if key in _SPAN_KEYS:
                        for span in row[key]:
                            int(span[0]), int(span[1]), str(span[2])
                    elif key == "candidates":
                        for c in row[key]:
                            int(c["start"]), int(c["end"]), str(c["label"]), list(c.get("extracted_by") or [])
                    else:
                        str(row[key])
            except (ValueError, KeyError, TypeError, IndexError) as err:
                raise ValueError(Errors.E625.format(path=path, line=n, keys=", ".join(need), err=err)) from err
            rows.append(row)
    return rows
