"""Episode files in, settlement files out: CSV in yuan for people, Parquet in int64 fen for machines.

Validation is vectorised. Each column has a list of checks (a Polars condition
plus the message to show). One pass computes the costly intermediates (fen
from yuan text, the ID's digits), the next, per column, the code of the first
failing check and the parsed value for every row. Only rows that failed are
then turned into messages, so a clean file of millions of rows costs a few
column operations, and a bad file reports every bad row, not just the first.
A file with any bad row is rejected whole: nothing is settled or written.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import polars as pl
from rich.progress import Progress

from gongji.core.errors import InvalidInput
from gongji.core.identity import CHECK_CHARS, CHECK_WEIGHTS, known_prefixes, province_codes
from gongji.core.money import MAX_FEN, YUAN_PATTERN, format_yuan
from gongji.rules.cascade import (
    ASSISTANCE_CATEGORIES,
    EPISODE_SCHEMA,
    HOSPITAL_LEVELS,
    AMOUNT_OUTPUT_COLUMNS,
    OUTPUT_COLUMNS,
    SCHEMES,
    settle_frame,
)
from gongji.rules.params import load_parameter_book

AMOUNT_COLUMNS = ("class_a", "class_b", "out_of_catalogue")
#: Columns an episode file must have; persons are identified by their resident ID number.
INPUT_COLUMNS = ("episode_id", "id_number", *(c for c in EPISODE_SCHEMA if c not in ("episode_id", "person_key")))
TRUE_TEXT = ("true", "1", "是")
FALSE_TEXT = ("false", "0", "否")
#: How many problems the error message lists; the BadRows error carries all of them.
LISTED_PROBLEMS = 20

_ROW_CONVENTION = {
    "csv": ("line", 2, "line numbers count the header as line 1, so the first data row is line 2"),
    "parquet": ("row", 1, "row numbers count data rows from 1"),
}
_DIGIT_POWERS = tuple(10 ** (16 - i) for i in range(17))


class RowProblem(NamedTuple):
    row: int
    column: str
    message: str


class BadRows(InvalidInput):
    """An input file with invalid rows: every problem, by row and column, in file order."""

    def __init__(self, problems: pl.DataFrame, source: str, file_kind: str):
        self.frame = problems
        self.unit, _, convention = _ROW_CONVENTION[file_kind]
        first = problems.head(LISTED_PROBLEMS).rows()
        bad_rows = problems["row"].n_unique()
        lines = [f"  {self.unit} {row}, {column}: {message}" for row, column, message in first]
        more = f"\n  … and {problems.height - len(first)} more" if problems.height > len(first) else ""
        detail = (
            f"{source}: {bad_rows} bad row(s), {problems.height} problem(s); the file was rejected "
            f"and nothing was written ({convention}).\n" + "\n".join(lines) + more
        )
        super().__init__(detail, field=first[0][1] if first else None)

    @property
    def problems(self) -> list[RowProblem]:
        return [RowProblem(*r) for r in self.frame.rows()]


@dataclass(frozen=True)
class _Check:
    """A row fails when `bad` is true (null counts as passing); `message` is built only for failing rows."""

    bad: pl.Expr
    message: pl.Expr


@dataclass(frozen=True)
class _Rules:
    """How one column is parsed (`value`) and checked; `helpers` are costly intermediate columns
    computed once beforehand, so checks and value can share them."""

    value: pl.Expr
    checks: list[_Check]
    helpers: dict[str, pl.Expr] = field(default_factory=dict)


@dataclass(frozen=True)
class SettlementSummary:
    episodes: int
    #: Fen per output amount column: total, each layer, residual.
    sums: dict[str, int]
    seconds: float


def read_episodes(path: Path | str) -> pl.DataFrame:
    """Read and validate an episode file (.csv in yuan, .parquet in fen) into EPISODE_SCHEMA.

    `person_key` is the normalised resident ID number (upper-case X); the caller
    must never write it out. Raises BadRows listing every bad row, or
    InvalidInput naming a missing column or an unreadable file.
    """
    path = Path(path)
    return _validate(_read_raw(path), _file_kind(path, "input"), path.name)


def write_settlement(df: pl.DataFrame, path: Path | str) -> None:
    """Write OUTPUT_COLUMNS: CSV in yuan with two decimals, Parquet in int64 fen; atomically.

    The `parameter_set` column says which set settled each row, so a region
    without its own set visibly took the national default.
    """
    write_table(df.select(OUTPUT_COLUMNS), Path(path), AMOUNT_OUTPUT_COLUMNS)


def settle_file(
    input: Path | str,
    output: Path | str,
    params_dir: Path | None = None,
    progress: Progress | None = None,
) -> SettlementSummary:
    """Read → validate → settle → write, showing each phase on `progress` when given.

    The output appears only when everything succeeded (temp file, then rename).
    """
    started = time.perf_counter()
    input, output = Path(input), Path(output)
    kind = _file_kind(input, "input")
    _file_kind(output, "output")
    book = load_parameter_book(params_dir)
    task = progress.add_task("读取 read", total=4) if progress is not None else None

    def phase(description: str) -> None:
        if progress is not None:
            progress.update(task, description=description, advance=1)

    raw = _read_raw(input)
    phase("校验 validate")
    episodes = _validate(raw, kind, input.name)
    del raw
    phase("结算 settle")
    settled = settle_frame(episodes, book)
    phase("写出 write")
    write_settlement(settled, output)
    phase("完成 done")
    sums = settled.select(pl.col(AMOUNT_OUTPUT_COLUMNS).sum()).row(0, named=True)
    return SettlementSummary(settled.height, {k: int(v) for k, v in sums.items()}, time.perf_counter() - started)


def write_table(df: pl.DataFrame, path: Path, amount_columns: tuple[str, ...]) -> None:
    """Write CSV (amounts as yuan text, dates ISO) or Parquet (as is), via a temp file and rename."""
    kind = _file_kind(path, "output")
    if not path.parent.is_dir():
        raise InvalidInput(f"output directory does not exist: {path.parent}", "output")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        if kind == "csv":
            df.with_columns(_yuan_text(pl.col(c)).alias(c) for c in amount_columns).write_csv(temporary)
        else:
            df.write_parquet(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def fen_from_yuan_text(text: pl.Expr) -> pl.Expr:
    """Yuan text already matching YUAN_PATTERN → Int64 fen, exactly, with string operations only.

    Null when the whole-yuan part is too long to be below MAX_FEN (and so could overflow).
    """
    digits = text.str.strip_chars().str.replace(r"^[¥￥]\s*", "").str.replace_all(",", "", literal=True)
    whole = digits.str.extract(r"^([0-9]+)", 1)
    fraction = digits.str.extract(r"\.([0-9]*)$", 1).fill_null("").str.pad_end(2, "0")
    significant = whole.str.strip_chars_start("0").str.len_bytes()
    max_digits = len(str(MAX_FEN // 100))
    return (
        pl.when(significant <= max_digits)
        .then(whole.str.to_integer(strict=False) * 100 + fraction.str.to_integer(strict=False))
        .cast(pl.Int64)
    )


def _yuan_text(fen: pl.Expr) -> pl.Expr:
    """Int64 fen → "12345.60" (no grouping, so CSV needs no quoting)."""
    magnitude = fen.abs()
    return (
        pl.when(fen < 0).then(pl.lit("-")).otherwise(pl.lit(""))
        + (magnitude // 100).cast(pl.String)
        + "."
        + (magnitude % 100).cast(pl.String).str.zfill(2)
    )


def _file_kind(path: Path, field: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise InvalidInput(f"file must end in .csv or .parquet: {path.name}", field)
    return suffix[1:]


def _read_raw(path: Path) -> pl.DataFrame:
    """The required columns as stored (CSV: all text), after checking that each one is there."""
    kind = _file_kind(path, "input")
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}", "input")
    try:
        if kind == "csv":
            columns = pl.scan_csv(path, infer_schema=False).collect_schema().names()
        else:
            columns = pl.read_parquet_schema(path).keys()
        _require_columns(columns)
        if kind == "csv":
            return pl.read_csv(path, infer_schema=False, columns=list(INPUT_COLUMNS))
        return pl.read_parquet(path, columns=list(INPUT_COLUMNS))
    except (pl.exceptions.PolarsError, OSError) as error:
        raise InvalidInput(f"cannot read {path.name}: {error}", "input") from None


def _require_columns(columns) -> None:
    present = {c.strip() for c in columns}
    for name in INPUT_COLUMNS:
        if name not in present:
            raise InvalidInput(f"required column '{name}' is missing", name)


def _validate(raw: pl.DataFrame, kind: str, source: str) -> pl.DataFrame:
    """Parse every column and return EPISODE_SCHEMA with person_key = normalised ID, or raise BadRows."""
    _, first_row, _ = _ROW_CONVENTION[kind]
    rules = {name: _column_rules(name, raw.schema[name], kind) for name in INPUT_COLUMNS}
    frame = raw.with_row_index("row", offset=first_row).with_columns(pl.col(pl.String).str.strip_chars())
    if kind == "csv":
        # Blank lines hold no episode; they are dropped after numbering so line numbers match the file.
        frame = frame.filter(~pl.all_horizontal(_blank(n) for n in INPUT_COLUMNS))
    frame = frame.with_columns(**{k: v for r in rules.values() for k, v in r.helpers.items()})

    codes = [_first_failure(r.checks).alias(f"code:{name}") for name, r in rules.items()]
    values = [r.value.alias(name) for name, r in rules.items()]
    result = frame.select("row", *codes, *values)
    code_columns = [f"code:{name}" for name in INPUT_COLUMNS]
    failing = result.select(pl.any_horizontal(pl.col(code_columns) > 0)).to_series()
    if failing.any():
        raise BadRows(_problems(frame.filter(failing), result.filter(failing), rules), source, kind)
    return result.select(
        *(pl.col("id_number" if name == "person_key" else name).alias(name) for name in EPISODE_SCHEMA)
    ).cast(EPISODE_SCHEMA)


def _first_failure(checks: list[_Check]) -> pl.Expr:
    """1-based index of the first failing check, 0 when the value is fine."""
    expr = pl.when(checks[0].bad.fill_null(False)).then(pl.lit(1, pl.UInt8))
    for number, check in enumerate(checks[1:], start=2):
        expr = expr.when(check.bad.fill_null(False)).then(pl.lit(number, pl.UInt8))
    return expr.otherwise(pl.lit(0, pl.UInt8))


def _problems(bad_raw: pl.DataFrame, bad_codes: pl.DataFrame, rules: dict[str, _Rules]) -> pl.DataFrame:
    """(row, column, message) for every failing cell of the failing rows, in file order."""
    parts = []
    for position, (name, column_rules) in enumerate(rules.items()):
        checks = column_rules.checks
        code = bad_codes[f"code:{name}"]
        rows = bad_raw.filter(code > 0).with_columns(code.filter(code > 0).alias("code"))
        if rows.height == 0:
            continue
        message = pl.when(pl.col("code") == 1).then(checks[0].message)
        for number, check in enumerate(checks[1:], start=2):
            message = message.when(pl.col("code") == number).then(check.message)
        parts.append(
            rows.select(
                pl.col("row").cast(pl.Int64),
                pl.lit(name).alias("column"),
                message.alias("message"),
                pl.lit(position).alias("position"),
            )
        )
    return pl.concat(parts).sort("row", "position").drop("position")


# --- per-column rules: (parsed value, checks in priority order) -------------------------------


def _text(name: str) -> pl.Expr:
    """The value as text; text columns were already stripped of surrounding blanks."""
    return pl.col(name).cast(pl.String)


def _blank(name: str) -> pl.Expr:
    text = _text(name)
    return text.is_null() | (text == "")


def _shown(text: pl.Expr) -> pl.Expr:
    """The offending value, shortened, for messages; digit runs as long as an ID or phone number are masked
    (the same rule as `core.identity.redact_personal_digits`), so an ID typed into the wrong column is never printed."""
    masked = text.str.replace_all(r"[0-9０-９]{11,}[0-9０-９XxＸｘ]?", "*****************")
    return masked.str.head(40)


def _required(name: str) -> _Check:
    return _Check(_blank(name), pl.lit("required value is missing"))


def _one_of(name: str, allowed: tuple[str, ...]) -> _Rules:
    value = _text(name).str.to_lowercase()
    message = pl.format(f"must be one of {', '.join(allowed)}; got '{{}}'", _shown(_text(name)))
    wrong = _Check(~value.is_in(allowed), message)
    return _Rules(value, [_required(name), wrong])


def _column_rules(name: str, dtype: pl.DataType, kind: str) -> _Rules:
    if dtype.is_nested():
        raise InvalidInput(f"column '{name}' holds {dtype}, not plain values", name)
    if name in AMOUNT_COLUMNS:
        return _amount_rules(name, dtype, kind)
    if name == "id_number":
        return _id_number_rules()
    if name == "scheme":
        return _one_of(name, SCHEMES)
    if name == "assistance_category":
        return _one_of(name, ASSISTANCE_CATEGORIES)
    if name in ("admission_date", "discharge_date"):
        return _date_rules(name, dtype)
    text = _text(name)
    if name == "episode_id":
        duplicate = _Check(text.is_duplicated() & ~_blank(name), pl.format("duplicate episode_id '{}'", _shown(text)))
        return _Rules(text, [_required(name), duplicate])
    if name == "inclusive_enrolled":
        if dtype == pl.Boolean:
            return _Rules(pl.col(name), [_required(name)])
        lowered = text.str.to_lowercase()
        value = pl.when(lowered.is_in(TRUE_TEXT)).then(True).when(lowered.is_in(FALSE_TEXT)).then(False)
        wrong = _Check(value.is_null(), pl.format("must be true/false, 1/0 or 是/否; got '{}'", _shown(text)))
        return _Rules(value, [_required(name), wrong])
    if name == "region":
        code = _Check(
            ~text.str.contains(r"^[0-9]{6}$"),
            pl.format("region must be a six-digit GB/T 2260 code; got '{}'", _shown(text)),
        )
        province = _Check(
            ~text.str.slice(0, 2).is_in(list(province_codes())),
            pl.format("unknown province code '{}'", text.str.slice(0, 2)),
        )
        return _Rules(text, [_required(name), code, province])
    if name == "hospital_level":
        level = pl.col(name).cast(pl.Int64, strict=False) if dtype.is_integer() else text.str.to_integer(strict=False)
        wrong = _Check(
            ~level.is_in(HOSPITAL_LEVELS).fill_null(False),
            pl.format("hospital level must be 1, 2 or 3; got '{}'", _shown(text)),
        )
        return _Rules(level.cast(pl.Int8, strict=False), [_required(name), wrong])
    if name == "icd10":
        code = text.str.to_uppercase()
        wrong = _Check(
            ~code.str.contains(r"^[A-Z][0-9]{2}(\.[0-9A-Z]+)?$"),
            pl.format("not an ICD-10 code such as C34 or N18.5; got '{}'", _shown(text)),
        )
        return _Rules(code, [_required(name), wrong])
    raise AssertionError(f"no rules for column {name}")


def _date_rules(name: str, dtype: pl.DataType) -> _Rules:
    def parsed(column: str) -> pl.Expr:
        if dtype == pl.Date:
            return pl.col(column).cast(pl.Date)
        return _text(column).str.to_date("%Y-%m-%d", strict=False)

    value = parsed(name)
    checks = [
        _required(name),
        _Check(value.is_null(), pl.format("not an ISO date (YYYY-MM-DD): '{}'", _shown(_text(name)))),
    ]
    if name == "discharge_date":
        admission = parsed("admission_date")
        checks.append(
            _Check(
                value < admission,
                pl.format("discharge {} is before admission {}", value.cast(pl.String), admission.cast(pl.String)),
            )
        )
    return _Rules(value, checks)


def _id_number_rules() -> _Rules:
    """GB 11643: 17 digits and a check character (ISO 7064 MOD 11-2), known province, real birth date.

    Messages never repeat the number itself; the row and column locate it.
    """
    number = pl.col("__id")
    first17 = pl.col("__id_first17")
    weighted = pl.sum_horizontal(
        ((first17 // power) % 10) * weight for power, weight in zip(_DIGIT_POWERS, CHECK_WEIGHTS, strict=True)
    )
    expected = (weighted % 11).replace_strict(dict(enumerate(CHECK_CHARS)), return_dtype=pl.String)
    birth = pl.col("__id_birth")
    checks = [
        _required("id_number"),
        _Check(
            ~number.str.contains(r"^[0-9]{17}[0-9X]$"),
            pl.format(
                "resident ID must be 17 digits followed by a digit or X ({} characters given)",
                number.str.len_chars(),
            ),
        ),
        _Check(
            ~number.str.slice(0, 2).is_in(known_prefixes()),
            pl.lit("the resident ID starts with an unknown province code"),
        ),
        _Check(birth.is_null(), pl.lit("invalid birth date in the resident ID")),
        _Check(
            (birth.dt.year() < 1900) | (birth > dt.date.today()),
            pl.lit("birth date in the resident ID is out of range"),
        ),
        _Check(number.str.slice(17, 1) != expected, pl.lit("check digit does not match (GB 11643)")),
    ]
    raw = _text("id_number")
    helpers = {
        "__id": raw.str.to_uppercase(),
        "__id_first17": pl.when(raw.str.contains(r"^[0-9]{17}")).then(
            raw.str.slice(0, 17).str.to_integer(strict=False)
        ),
        "__id_birth": raw.str.slice(6, 8).str.to_date("%Y%m%d", strict=False),
    }
    return _Rules(number, checks, helpers)


def _amount_rules(name: str, dtype: pl.DataType, kind: str) -> _Rules:
    ceiling = pl.lit(f"exceeds the ceiling of {format_yuan(MAX_FEN)} yuan")
    if kind == "parquet":
        if not (dtype.is_integer() or dtype == pl.Null):
            raise InvalidInput(f"Parquet amounts are integer fen; column '{name}' holds {dtype}", name)
        fen = pl.col(name).cast(pl.Int64, strict=False)
        checks = [
            _Check(pl.col(name).is_null(), pl.lit("required value is missing")),
            _Check(fen.is_null(), ceiling),
            _Check(fen < 0, pl.format("amount must not be negative: {} fen", fen)),
            _Check(fen > MAX_FEN, ceiling),
        ]
        return _Rules(fen, checks)
    # Full-width digits, comma and ￥ as a Chinese keyboard types them are normalised (NFKC) first,
    # exactly as `core.money.parse_yuan` does for one amount.
    typed = _text(name)
    text = typed.str.normalize("NFKC")
    fen = pl.col(f"__fen:{name}")
    plain = text.str.replace(r"^[¥￥]\s*", "").str.replace_all(",", "", literal=True)
    checks = [
        _required(name),
        _Check(text.str.contains(r"^[-−]"), pl.format("amount must not be negative: '{}'", _shown(text))),
        _Check(
            text.str.contains(r"\.[0-9]{3,}$"), pl.format("at most two decimals (fen) allowed: '{}'", _shown(text))
        ),
        _Check(
            ~typed.str.contains(YUAN_PATTERN) | ~plain.str.contains(r"^[0-9]+(\.[0-9]*)?$"),
            pl.format("not a yuan amount (e.g. 12345.60): '{}'", _shown(text)),
        ),
        _Check(fen.is_null() | (fen > MAX_FEN), ceiling),
    ]
    return _Rules(fen, checks, {f"__fen:{name}": fen_from_yuan_text(text)})
