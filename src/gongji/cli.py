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


#: Inputs at least this large get a progress bar; smaller ones finish before it would be seen.
PROGRESS_FROM_BYTES = 20_000_000
#: Generating at least this many episodes shows a spinner.
STATUS_FROM_EPISODES = 200_000


@app.command()
def settle(
    input_file: Annotated[
        Path, typer.Argument(metavar="INPUT", help="Episode file: .csv (amounts in yuan) or .parquet (int64 fen).")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Settlement file to write: .csv or .parquet.")],
    params: ParamsOption = None,
) -> None:
    """Settle an episode file through 基本医保 → 大病保险 → 医疗救助 → 惠民保; any bad row rejects the file."""
    # Imported here so that `gongji --help` stays fast (Polars loads in a few hundred ms).
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from gongji.batch.files import BadRows, settle_file
    from gongji.core.errors import GongjiError
    from gongji.core.money import format_yuan
    from gongji.rules.cascade import LAYER_NAMES

    errors = Console(stderr=True)
    large = input_file.is_file() and input_file.stat().st_size >= PROGRESS_FROM_BYTES
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
        console=errors, transient=True, disable=not large,
    )
    try:
        with progress:
            summary = settle_file(input_file, output, params, progress)
    except BadRows as error:
        shown = error.frame.head(100)
        bad_rows = error.frame["row"].n_unique()
        table = Table(title=f"{input_file.name}: {bad_rows} bad row(s) — file rejected, nothing written")
        table.add_column(error.unit, justify="right")
        table.add_column("column")
        table.add_column("problem")
        for row, column, message in shown.rows():
            table.add_row(str(row), column, message)
        if error.frame.height > shown.height:
            table.caption = f"… and {error.frame.height - shown.height} more problem(s)"
        errors.print(table)
        if error.unit == "line":
            errors.print("Line numbers: the header is line 1, so the first data row is line 2.")
        else:
            errors.print("Row numbers: data rows count from 1.")
        raise typer.Exit(2) from None
    except GongjiError as error:
        errors.print(f"[red]error[/red] {error}")
        raise typer.Exit(2) from None

    table = Table(title=f"结算汇总 Settlement of {input_file.name} → {output.name}")
    table.add_column("")
    table.add_column("yuan", justify="right")
    table.add_row("episodes 病例数", f"{summary.episodes:,}")
    table.add_row("total cost 总费用", format_yuan(summary.sums["total"]))
    for layer, (chinese, english) in LAYER_NAMES.items():
        table.add_row(f"{english} {chinese}", format_yuan(summary.sums[layer]))
    table.add_row("residual 个人自付", format_yuan(summary.sums["residual"]))
    table.caption = f"{summary.seconds:.2f} s"
    Console().print(table)


@generate_app.command("episodes")
def generate_episodes_command(
    episodes: Annotated[int, typer.Option("-n", "--episodes", min=0, help="Number of episodes.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write: .csv (yuan) or .parquet (fen).")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same file.")] = 0,
    region: Annotated[str, typer.Option("--region", help="GB/T 2260 region code of the persons.")] = "330100",
) -> None:
    """Write synthetic persons' episodes (with valid synthetic resident ID numbers) for demos and tests."""
    import time
    from contextlib import nullcontext

    from rich.console import Console

    from gongji.core.errors import GongjiError
    from gongji.episodes.synthetic import generate_episodes, write_episodes

    console = Console(stderr=True)
    started = time.perf_counter()
    status = console.status if episodes >= STATUS_FROM_EPISODES else lambda _text: nullcontext()
    try:
        with status(f"生成 generating {episodes:,} episodes…"):
            frame = generate_episodes(episodes, seed=seed, region=region)
        with status(f"写出 writing {output.name}…"):
            write_episodes(frame, output)
    except GongjiError as error:
        console.print(f"[red]error[/red] {error}")
        raise typer.Exit(2) from None
    persons = frame["person_key"].n_unique()
    console.print(
        f"wrote {frame.height:,} episodes of {persons:,} persons to {output} in {time.perf_counter() - started:.1f} s"
    )


def main() -> None:  # pragma: no cover - entry point
    app()
