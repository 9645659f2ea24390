"""Collect every metrics/*/results.md into one report: python scripts/report.py METRICS_DIR OUT."""
import sys
from pathlib import Path


def main(metrics: str, out: str) -> None:
    parts = ["# EL4NER results", ""]
    for md in sorted(Path(metrics).glob("*/results.md")):
        parts.append(md.read_text())
    Path(out).write_text("\n".join(parts))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
