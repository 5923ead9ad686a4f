"""Command line (Typer + Rich): settle, explain, generate, ledger, serve, demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gongji.core.identity import redact_personal_digits

app = typer.Typer(help="共济 Gongji command line.", no_args_is_help=True)
generate_app = typer.Typer(help="Generate synthetic demo data.", no_args_is_help=True)
ledger_app = typer.Typer(help="The ledger: a verifiable transparency log.", no_args_is_help=True)
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
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
        disable=not large,
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
        errors.print(f"[red]error[/red] {redact_personal_digits(str(error))}")
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
        console.print(f"[red]error[/red] {redact_personal_digits(str(error))}")
        raise typer.Exit(2) from None
    persons = frame["person_key"].n_unique()
    console.print(
        f"wrote {frame.height:,} episodes of {persons:,} persons to {output} in {time.perf_counter() - started:.1f} s"
    )


@app.command()
def explain(
    input_file: Annotated[Path, typer.Argument(metavar="INPUT", help="Episode file (.csv or .parquet).")],
    episode_id: Annotated[str, typer.Argument(help="The episode to explain.")],
    params: ParamsOption = None,
) -> None:
    """Explain one episode line by line: layer, base, parameters with sources, arithmetic, amount.

    The person's earlier episodes of the same year in the file are settled first,
    because deductibles, caps and thresholds accumulate over the year.
    """
    from rich.console import Console
    from rich.table import Table

    from gongji.batch.files import read_episodes
    from gongji.core.errors import GongjiError, InvalidInput
    from gongji.core.money import format_yuan
    from gongji.rules.cascade import EPISODE_SCHEMA, EpisodeInput, explain_person_year
    from gongji.rules.params import load_parameter_book

    console = Console()
    try:
        frame = read_episodes(input_file)
        wanted = frame.filter(frame["episode_id"] == episode_id)
        if wanted.height == 0:
            raise InvalidInput(f"episode {episode_id!r} is not in {input_file.name}", "episode_id")
        person = frame.filter(frame["person_key"] == wanted["person_key"][0])
        episodes = [EpisodeInput(**{k: row[k] for k in EPISODE_SCHEMA}) for row in person.iter_rows(named=True)]
        settled = explain_person_year(episodes, load_parameter_book(params))
    except GongjiError as error:
        Console(stderr=True).print(f"[red]error[/red] {redact_personal_digits(str(error))}")
        raise typer.Exit(2) from None
    settlement = next(s for s in settled if s.episode_id == episode_id)
    console.print(f"[bold]病例 episode {episode_id}[/bold] — 参数 parameter set {settlement.parameter_set}")
    if settlement.parameter_note:
        console.print(f"  {settlement.parameter_note.render()}")
    # Sources are long sentences: numbered under each table and printed whole (the terminal wraps them),
    # so a narrow terminal never cuts one off.
    for line in settlement.lines:
        table = Table(title=f"{line.name_zh} {line.name_en}: ¥{format_yuan(line.amount)}", title_justify="left")
        table.add_column("参数 parameter", overflow="fold")
        table.add_column("值 value", justify="right", overflow="fold")
        table.add_column("来源 source", justify="right")
        sources: list[str] = []
        for parameter in line.parameters:
            if parameter.source and parameter.source not in sources:
                sources.append(parameter.source)
            mark = f"[{sources.index(parameter.source) + 1}]" if parameter.source else ""
            table.add_row(parameter.name.render(), parameter.value, mark)
        console.print(table if line.parameters else table.title)
        for number, source in enumerate(sources, start=1):
            console.print(f"  [{number}] {source}", soft_wrap=True, markup=False)
        for step in line.arithmetic:
            console.print(f"  {step.render()}", soft_wrap=True, markup=False)
    console.print(
        f"[bold]总费用 total ¥{format_yuan(settlement.amounts['total'])} · "
        f"个人自付 residual ¥{format_yuan(settlement.residual)}[/bold]"
    )


@app.command()
def resettle(
    person_id: Annotated[int, typer.Argument(min=1, help="The person (id in the database).")],
    year: Annotated[int, typer.Argument(min=1950, max=2100, help="Calendar year of discharge.")],
    params: ParamsOption = None,
) -> None:
    """Re-settle a person's year in discharge order; differences are recorded as audited adjustments (调整)."""
    from rich.console import Console
    from rich.table import Table

    from gongji.core.db import make_engine, migrate, session_factory, transaction
    from gongji.core.errors import GongjiError
    from gongji.core.money import format_yuan
    from gongji.core.settings import get_settings
    from gongji.episodes.service import resettle_year
    from gongji.rules.params import load_parameter_book

    settings = get_settings()
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with transaction(session_factory(engine)) as session:
            result = resettle_year(
                session, load_parameter_book(params or settings.params_dir), person_id, year, "cli"
            )
    except GongjiError as error:
        Console(stderr=True).print(f"[red]error[/red] {redact_personal_digits(str(error))}")
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    console = Console()
    if not result.adjustments:
        console.print(f"person {person_id}, {year}: {len(result.settlements)} settled episode(s) already match")
        return
    table = Table(title=f"重新结算 re-settled person {person_id}, {year}: {len(result.adjustments)} adjustment(s)")
    for column in ("episode", "layer", "recorded", "recomputed", "adjustment"):
        table.add_column(column, justify="left" if column in ("episode", "layer") else "right")
    for a in result.adjustments:
        table.add_row(
            str(a.episode_id), a.layer, format_yuan(a.recorded), format_yuan(a.recomputed), format_yuan(a.amount)
        )
    console.print(table)


def _ledger_session():
    """A session on the configured database (migrated first), with every leaf source registered."""
    import gongji.episodes.service  # noqa: F401 - registers the coverage registry's leaves
    from gongji.core.db import make_engine, migrate, session_factory
    from gongji.core.settings import get_settings

    settings = get_settings()
    migrate(settings.database_url)
    return settings, session_factory(make_engine(settings.database_url))


@app.command()
def apportion(
    plan: Annotated[str, typer.Argument(metavar="PLAN", help="The plan's code, e.g. online-comprehensive.")],
    period: Annotated[int, typer.Argument(metavar="PERIOD", help="The period's number (opened beforehand).")],
) -> None:
    """分摊: charge a mutual-aid period to the members protected at its cut-off, as one bulk ledger entry."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table
    from sqlalchemy import select

    from gongji.core.db import transaction
    from gongji.core.errors import GongjiError
    from gongji.core.money import format_yuan
    from gongji.mutual_aid import apportionment
    from gongji.mutual_aid.models import Period

    _, sessions = _ledger_session()
    errors = Console(stderr=True)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=errors, transient=True)
    tasks: dict[str, object] = {}

    def report(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = bar.add_task({"charges": "分摊额 charges", "ledger": "账本 ledger lines"}.get(phase, phase),
                                        total=max(total, 1))
        bar.update(tasks[phase], completed=done, total=max(total, 1))

    try:
        with bar, transaction(sessions) as session:
            found = session.scalar(select(Period.id).where(Period.plan_code == plan, Period.number == period))
            if found is None:
                raise GongjiError("plan {plan} has no period {number}", "period", values={"plan": plan,
                                                                                         "number": period})
            done = apportionment.apportion(session, found, actor="cli", progress=report)
    except GongjiError as error:
        errors.print(f"[red]error[/red] {redact_personal_digits(str(error))}")
        raise typer.Exit(2) from None
    table = Table(title=f"分摊公示 {plan} 第{done.number}期 period statement")
    table.add_column("")
    table.add_column("", justify="right")
    for label, value in (
        ("cases 案件", f"{done.cases:,}"), ("payouts 互助金", format_yuan(done.payouts)),
        ("fee 管理费", format_yuan(done.fee)), ("carried in 上期结余", format_yuan(done.surplus_in)),
        ("to collect 应分摊", format_yuan(done.amount_to_collect)), ("members 参与分摊人数", f"{done.members:,}"),
        ("share 人均分摊", format_yuan(done.share)), ("charged 实际分摊", format_yuan(done.charged)),
        ("surplus 结余", format_yuan(done.surplus_out)), ("uncovered 未覆盖", format_yuan(done.uncovered)),
        ("ledger entry 账本分录", str(done.entry_seq)),
    ):
        table.add_row(label, value)
    Console().print(table)


@ledger_app.command("sequence")
def ledger_sequence() -> None:
    """Number every pending entry and coverage record into the log, then sign a checkpoint."""
    from rich.console import Console

    from gongji.core.db import transaction
    from gongji.ledger.service import sequence
    from gongji.ledger.signing import load_signer

    settings, sessions = _ledger_session()
    signer = load_signer(settings)
    total = 0
    while True:
        with transaction(sessions) as session:
            report = sequence(session, signer)
        total += report.sequenced
        if not report.sequenced:
            break
    Console().print(f"sequenced {total:,} leaves; the log has {report.size:,}")


@ledger_app.command("checkpoint")
def ledger_checkpoint() -> None:
    """Print the latest signed checkpoint (keep it: `verify --since` proves later logs extend it)."""
    from gongji.core.errors import GongjiError
    from gongji.ledger.service import latest_checkpoint

    _settings, sessions = _ledger_session()
    try:
        with sessions() as session:
            typer.echo(latest_checkpoint(session).note, nl=False)
    except GongjiError as error:
        typer.echo(f"error {error}", err=True)
        raise typer.Exit(2) from None


@ledger_app.command("verify")
def ledger_verify(
    since: Annotated[
        Optional[Path], typer.Option("--since", help="A signed checkpoint saved earlier: prove the log extends it.")
    ] = None,
) -> None:
    """Recompute every leaf and the tree; check every checkpoint; name the first bad leaf (exit 1) or say intact."""
    from rich.console import Console

    from gongji.ledger.service import verify_log
    from gongji.ledger.signing import load_signer

    settings, sessions = _ledger_session()
    saved = since.read_text(encoding="utf-8") if since else None
    with sessions() as session:
        report = verify_log(session, load_signer(settings).verifier_key, since=saved)
    console = Console()
    if report.ok:
        extends = " and extends the saved checkpoint" if saved else ""
        console.print(
            f"[green]ledger intact[/green]: {report.leaves_checked} leaves, tree and checkpoints verified{extends}"
        )
        return
    where = f"leaf {report.first_bad_leaf}" if report.first_bad_leaf is not None else "checkpoints"
    console.print(f"[red]ledger tampered[/red]: {where} — {report.reason} ({report.leaves_checked} leaves checked)")
    raise typer.Exit(1)


HostOption = Annotated[str, typer.Option("--host", help="Address to listen on.")]
PortOption = Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")]


#: How many ports above a taken one are tried for the hint.
NEARBY_PORTS = 100


def _port_taken(host: str, port: int) -> bool:
    """Whether something already listens on host:port (bound the way uvicorn binds, so TIME_WAIT is no obstacle)."""
    import errno
    import socket

    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def _refuse_taken_port(host: str, port: int, retry: str) -> None:
    """Stop with a hint naming a free port instead of uvicorn's bind error (a second run.sh, say)."""
    if not _port_taken(host, port):
        return
    free = next((p for p in range(port + 1, min(port + NEARBY_PORTS, 65535) + 1) if not _port_taken(host, p)), None)
    suggestion = retry.format(port=free) if free else retry.format(port="<port>")
    typer.echo(
        f"端口 {port} 已被占用（也许另一个 gongji 正在运行）。请换一个端口：{suggestion}\n"
        f"Port {port} on {host} is already in use (perhaps another gongji is running). "
        f"Use another port: {suggestion}",
        err=True,
    )
    raise typer.Exit(1)


def _serve(host: str, port: int) -> None:
    import uvicorn

    from gongji.api.app import create_app

    app_instance = create_app()
    typer.echo(f"共济 Gongji: http://{host}:{port}/  (API docs: http://{host}:{port}/docs)")
    uvicorn.run(app_instance, host=host, port=port)


@app.command()
def serve(host: HostOption = "127.0.0.1", port: PortOption = 8000) -> None:
    """Serve the API and the web pages (migrates the database first)."""
    _refuse_taken_port(host, port, "gongji serve --port {port}")
    _serve(host, port)


@app.command()
def demo(host: HostOption = "127.0.0.1", port: PortOption = 8000) -> None:
    """Create demo accounts, settled synthetic episodes and mutual-aid plans with members, claims and periods
    in the embedded database, then serve."""
    from gongji.core.settings import get_settings
    from gongji.demo import prepare_demo

    _refuse_taken_port(host, port, "bash scripts/run.sh --port {port}")
    report = prepare_demo(get_settings())
    if report.persons_loaded:
        typer.echo(f"loaded {report.persons_loaded} demo persons with {report.episodes_loaded} settled episodes")
    if report.mutual_aid.members:
        typer.echo(f"mutual aid: {report.mutual_aid.members:,} members, {report.mutual_aid.claims} claims, "
                   f"{report.mutual_aid.periods} closed periods")
    typer.echo(f"demo accounts (username, role, password), saved in {report.credentials_file}:")
    typer.echo(report.credentials.rstrip())
    typer.echo(f"sign in to the caseworker workbench (个案工作台) at http://{host}:{port}/workbench/login")
    typer.echo(f"mutual aid (医疗互助): http://{host}:{port}/mutual-aid — members sign in as member or juror, "
               "the operator as ma.admin, ma.reviewer or ma.assessor")
    _serve(host, port)


def main() -> None:  # pragma: no cover - entry point
    app()
