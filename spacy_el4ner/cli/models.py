"""``models list`` / ``models pull``: the embedded models from PyPI packages."""
from typing import List

import typer
from wasabi import msg

from ..models import zoo
from ..registry import DEFAULT_MEMBERS

models_app = typer.Typer(no_args_is_help=True, help="Embedded models shipped in PyPI packages")
DEFAULT_SET = list(DEFAULT_MEMBERS) + ["all-minilm-l6-v2"]


@models_app.command("list")
def list_models() -> None:
    """Show the embedded models, whether they are ready, and their licences."""
    rows = []
    for name, spec in zoo.ZOO.items():
        default = "default" if name in DEFAULT_SET else ""
        rows.append((name, "ready" if zoo.is_ready(name) else "-", default, spec.description, spec.licence))
    msg.table(rows, header=("name", "state", "", "model", "licence"), divider=True)
    for name, why in zoo.EXCLUDED.items():
        msg.warn(f"{name}: {why}")


@models_app.command("pull")
def pull(
    names: List[str] = typer.Argument(None, help="Model names (default: the default ensemble and encoder)"),
    force: bool = typer.Option(False, "--force", help="Reinstall the packages and convert again"),
) -> None:
    """Install the packages (no dependencies), assemble, check sha256 and convert to bf16 once."""
    for name in names or DEFAULT_SET:
        msg.info(f"Preparing {name} ...")
        path = zoo.pull(name, force=force)
        msg.good(f"{name}: {path}")
