"""Command line (Typer + Rich): settle, explain, generate, ledger, serve, demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="共济 Gongji command line.", no_args_is_help=True)
generate_app = typer.Typer(help="Generate synthetic demo data.", no_args_is_help=True)
ledger_app = typer.Typer(help="The hash-chained ledger.", no_args_is_help=True)
app.add_typer(generate_app, name="generate")
app.add_typer(ledger_app, name="ledger")

ParamsOption = Annotated[
    Optional[Path], typer.Option("--params", help="Directory of parameter YAML (default: bundled set).")
]


def main() -> None:  # pragma: no cover - entry point
    app()
