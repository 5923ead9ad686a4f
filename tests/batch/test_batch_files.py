"""Reading episode files: exact yuan → fen, every bad row named by row and column, whole-file rejection."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from helpers import valid_id_number
from hypothesis import given, settings
from hypothesis import strategies as st

from gongji.batch.files import (
    INPUT_COLUMNS,
    BadRows,
    fen_from_yuan_text,
    read_episodes,
    settle_file,
    write_settlement,
)
from gongji.core.errors import InvalidInput
from gongji.core.money import MAX_FEN, parse_yuan
from gongji.episodes.synthetic import generate_episodes, write_episodes
from gongji.rules.cascade import AMOUNT_OUTPUT_COLUMNS, OUTPUT_COLUMNS


@pytest.fixture(scope="module")
def episodes() -> pl.DataFrame:
    return generate_episodes(40, seed=5)


def write_csv_rows(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def id_ending_in_x() -> str:
    return next(n for seq in range(1000) if (n := valid_id_number("110105", dt.date(1980, 1, 1), seq)).endswith("X"))


def csv_rows(episodes: pl.DataFrame, tmp_path: Path) -> list[dict]:
    """The generated episodes as the text rows of their CSV file."""
    path = tmp_path / "good.csv"
    write_episodes(episodes, path)
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_csv_round_trip_is_exact(episodes, tmp_path):
    path = tmp_path / "episodes.csv"
    write_episodes(episodes, path)
    assert read_episodes(path).equals(episodes.drop("id_number"))


def test_parquet_round_trip(episodes, tmp_path):
    path = tmp_path / "episodes.parquet"
    write_episodes(episodes, path)
    assert read_episodes(path).equals(episodes.drop("id_number"))


def test_yuan_text_variants_and_lenient_spellings(episodes, tmp_path):
    rows = csv_rows(episodes, tmp_path)[:6]
    amounts = ["¥1,234.5", "￥12", "12.", " 0.07 ", "¥ 100000000", "1234567.89"]
    for row, amount in zip(rows, amounts, strict=True):
        row["class_a"] = amount
    rows[0]["inclusive_enrolled"], rows[1]["inclusive_enrolled"] = "是", "否"
    rows[2]["inclusive_enrolled"], rows[3]["inclusive_enrolled"] = "1", "TRUE"
    rows[4]["scheme"] = " Employee "
    rows[5]["id_number"] = id_ending_in_x().lower()
    frame = read_episodes(write_csv_rows(tmp_path / "variants.csv", rows))
    assert frame["class_a"].to_list() == [123450, 1200, 1200, 7, MAX_FEN, 123456789]
    assert frame["inclusive_enrolled"].to_list()[:4] == [True, False, True, True]
    assert frame["scheme"][4] == "employee"


def test_lower_case_x_is_normalised_in_person_key(episodes, tmp_path):
    rows = csv_rows(episodes, tmp_path)[:1]
    rows[0]["id_number"] = id_ending_in_x().lower()
    frame = read_episodes(write_csv_rows(tmp_path / "x.csv", rows))
    assert frame["person_key"][0] == id_ending_in_x()


BAD_VALUES = [
    ("class_a", "12.345", "at most two decimals"),
    ("class_b", "-5.00", "must not be negative"),
    ("out_of_catalogue", "abc", "not a yuan amount"),
    ("class_a", "1,23.00", "not a yuan amount"),
    ("class_a", "100000000.01", "exceeds the ceiling"),
    ("class_a", "99999999999999999999999", "exceeds the ceiling"),
    ("class_b", "", "required value is missing"),
    ("id_number", "12345", "17 digits followed by a digit or X"),
    ("id_number", valid_id_number("330100", dt.date(1980, 5, 1), 7)[:17] + "Y", "17 digits"),
    ("id_number", "99" + valid_id_number("990100", dt.date(1980, 5, 1), 7)[2:], "unknown province code"),
    ("id_number", "33010019800230007" + "0", "invalid birth date"),
    ("id_number", valid_id_number("330100", dt.date(1890, 5, 1), 7), "out of range"),
    ("scheme", "pensioner", "must be one of employee, retiree, resident"),
    ("assistance_category", "poor", "must be one of none"),
    ("inclusive_enrolled", "maybe", "true/false"),
    ("region", "33010", "six-digit"),
    ("region", "990100", "unknown province code"),
    ("hospital_level", "4", "1, 2 or 3"),
    ("admission_date", "2024/01/05", "ISO date"),
    ("discharge_date", "2024-02-30", "ISO date"),
    ("icd10", "pneumonia", "ICD-10"),
]


@pytest.mark.parametrize(("column", "value", "expected"), BAD_VALUES)
def test_each_bad_value_named_by_line_and_column(episodes, tmp_path, column, value, expected):
    rows = csv_rows(episodes, tmp_path)
    rows[3][column] = value
    with pytest.raises(BadRows) as raised:
        read_episodes(write_csv_rows(tmp_path / "bad.csv", rows))
    assert raised.value.problems[0][:2] == (5, column)  # data row 4 is line 5: the header is line 1
    assert expected in raised.value.problems[0].message
    assert len(raised.value.problems) == 1
    assert raised.value.field == column
    assert "line 5, " + column in str(raised.value)
    assert value not in str(raised.value) or column != "id_number"  # ID numbers are never echoed


def test_wrong_check_digit(episodes, tmp_path):
    rows = csv_rows(episodes, tmp_path)
    number = rows[0]["id_number"]
    rows[0]["id_number"] = number[:17] + ("0" if number[17] != "0" else "1")
    with pytest.raises(BadRows) as raised:
        read_episodes(write_csv_rows(tmp_path / "bad.csv", rows))
    assert raised.value.problems == [(2, "id_number", "check digit does not match (GB 11643)")]


def test_discharge_before_admission(episodes, tmp_path):
    rows = csv_rows(episodes, tmp_path)
    rows[1]["admission_date"], rows[1]["discharge_date"] = "2024-03-10", "2024-03-09"
    with pytest.raises(BadRows) as raised:
        read_episodes(write_csv_rows(tmp_path / "bad.csv", rows))
    assert raised.value.problems == [(3, "discharge_date", "discharge 2024-03-09 is before admission 2024-03-10")]


def test_duplicate_episode_ids_reported_on_every_occurrence(episodes, tmp_path):
    rows = csv_rows(episodes, tmp_path)
    rows[7]["episode_id"] = rows[2]["episode_id"]
    with pytest.raises(BadRows) as raised:
        read_episodes(write_csv_rows(tmp_path / "bad.csv", rows))
    assert [(p.row, p.column) for p in raised.value.problems] == [(4, "episode_id"), (9, "episode_id")]


def test_every_bad_row_reported_in_file_order_first_20_listed(episodes, tmp_path):
    rows = csv_rows(episodes, tmp_path)
    for row in rows[:25]:
        row["class_a"] = "x"
    rows[30]["scheme"], rows[30]["hospital_level"] = "?", "0"
    with pytest.raises(BadRows) as raised:
        read_episodes(write_csv_rows(tmp_path / "bad.csv", rows))
    problems = raised.value.problems
    assert len(problems) == 27
    assert [p.row for p in problems] == [*range(2, 27), 32, 32]
    assert [p.column for p in problems[-2:]] == ["scheme", "hospital_level"]
    message = str(raised.value)
    assert "26 bad row(s), 27 problem(s)" in message
    assert "header as line 1" in message
    assert "line 21, class_a" in message and "line 22, class_a" not in message
    assert "and 7 more" in message


def test_blank_lines_skipped_and_numbering_kept(episodes, tmp_path):
    path = tmp_path / "blank.csv"
    write_episodes(episodes.head(3), path)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(2, "")
    lines[3] = lines[3].replace(",J18,", ",?,").replace(",E11,", ",?,").replace(",I61,", ",?,")
    lines[3] = lines[3].rsplit(",", 1)[0] + ",oops"
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    with pytest.raises(BadRows) as raised:
        read_episodes(path)
    assert {(p.row, p.column) for p in raised.value.problems} >= {(4, "out_of_catalogue")}
    assert all(p.row == 4 for p in raised.value.problems)


@pytest.mark.parametrize("missing", ["id_number", "class_b", "discharge_date"])
def test_missing_column_named(episodes, tmp_path, missing):
    rows = [{k: v for k, v in row.items() if k != missing} for row in csv_rows(episodes, tmp_path)]
    with pytest.raises(InvalidInput) as raised:
        read_episodes(write_csv_rows(tmp_path / "missing.csv", rows))
    assert not isinstance(raised.value, BadRows)
    assert raised.value.field == missing
    assert f"'{missing}'" in str(raised.value)


def test_unreadable_inputs(tmp_path):
    with pytest.raises(InvalidInput, match="no such file"):
        read_episodes(tmp_path / "absent.csv")
    with pytest.raises(InvalidInput, match=r"\.csv or \.parquet"):
        read_episodes(tmp_path / "episodes.xlsx")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text(",".join(INPUT_COLUMNS) + "\n" + ",".join(["1"] * (len(INPUT_COLUMNS) + 2)) + "\n")
    with pytest.raises(InvalidInput, match="cannot read"):
        read_episodes(ragged)


def test_parquet_rows_counted_from_one(episodes, tmp_path):
    path = tmp_path / "bad.parquet"
    episodes.with_columns(
        pl.when(pl.int_range(pl.len()) == 2).then(-1).otherwise(pl.col("class_b")).alias("class_b"),
        pl.when(pl.int_range(pl.len()) == 4).then(MAX_FEN + 1).otherwise(pl.col("class_a")).alias("class_a"),
    ).write_parquet(path)
    with pytest.raises(BadRows) as raised:
        read_episodes(path)
    assert [(p.row, p.column) for p in raised.value.problems] == [(3, "class_b"), (5, "class_a")]
    assert "row numbers count data rows from 1" in str(raised.value)


def test_parquet_amounts_must_be_integer(episodes, tmp_path):
    path = tmp_path / "float.parquet"
    episodes.with_columns(pl.col("class_a") / 100).write_parquet(path)
    with pytest.raises(InvalidInput) as raised:
        read_episodes(path)
    assert raised.value.field == "class_a"
    assert "integer fen" in str(raised.value)


def test_parquet_with_text_columns_goes_through_the_same_checks(episodes, tmp_path):
    path = tmp_path / "text.parquet"
    episodes.with_columns(
        pl.col("admission_date", "discharge_date", "inclusive_enrolled", "hospital_level").cast(pl.String)
    ).write_parquet(path)
    assert read_episodes(path).equals(episodes.drop("id_number"))


def test_write_settlement_formats(tmp_path):
    frame = pl.DataFrame(
        {
            "episode_id": ["E1"], "parameter_set": ["national-2024"],
            **{c: [i * 1001 + 5] for i, c in enumerate(AMOUNT_OUTPUT_COLUMNS, start=1)},
        },
        schema={"episode_id": pl.String, "parameter_set": pl.String, **{c: pl.Int64 for c in AMOUNT_OUTPUT_COLUMNS}},
    )
    write_settlement(frame, tmp_path / "s.csv")
    assert (tmp_path / "s.csv").read_text().splitlines() == [
        ",".join(OUTPUT_COLUMNS),
        "E1,national-2024,10.06,20.07,30.08,40.09,50.10,60.11",
    ]
    write_settlement(frame, tmp_path / "s.parquet")
    assert pl.read_parquet(tmp_path / "s.parquet").equals(frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv", "s.parquet"]  # no temp files left


def test_settle_file_writes_nothing_on_bad_rows(episodes, tmp_path):
    rows = csv_rows(episodes, tmp_path)
    rows[0]["class_a"] = "1.234"
    source = write_csv_rows(tmp_path / "bad.csv", rows)
    with pytest.raises(BadRows):
        settle_file(source, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_settle_file_round_trip(episodes, tmp_path):
    source = tmp_path / "in.parquet"
    write_episodes(episodes, source)
    summary = settle_file(source, tmp_path / "out.parquet")
    settled = pl.read_parquet(tmp_path / "out.parquet")
    assert settled.columns == list(OUTPUT_COLUMNS)
    assert settled["episode_id"].to_list() == episodes["episode_id"].to_list()
    assert summary.episodes == episodes.height
    cost = episodes.select(pl.sum("class_a", "class_b", "out_of_catalogue")).sum_horizontal().item()
    assert summary.sums["total"] == cost


# --- yuan text → fen, vectorised, agrees with the scalar parse_yuan ---------------------------------


@st.composite
def valid_yuan_texts(draw) -> str:
    whole = draw(st.integers(0, MAX_FEN // 100))
    digits = f"{whole:,}" if draw(st.booleans()) else "0" * draw(st.integers(0, 2)) + str(whole)
    fraction = draw(st.sampled_from(["", ".", ".5", ".05", ".50", ".99"]))
    sign = draw(st.sampled_from(["", "¥", "￥", "¥ "]))
    padding = draw(st.sampled_from(["", " ", "\t"]))
    return padding + sign + digits + fraction + padding


@settings(max_examples=300)
@given(st.lists(valid_yuan_texts(), min_size=1, max_size=20))
def test_fen_from_yuan_text_equals_parse_yuan(texts):
    fen = pl.select(fen_from_yuan_text(pl.lit(pl.Series(texts, dtype=pl.String)))).to_series().to_list()
    for text, value in zip(texts, fen, strict=True):
        try:
            expected = parse_yuan(text)
        except InvalidInput:
            assert value is None or value > MAX_FEN
        else:
            assert value == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="0123456789,.¥￥ -０１２３４５６７８９，．٣²", max_size=14), min_size=1, max_size=12))
def test_reader_accepts_exactly_what_parse_yuan_accepts(tmp_path_factory, texts):
    """Full-width forms (as Chinese keyboards type them) are read; other scripts' digits are refused, both ways."""
    template = generate_episodes(len(texts), seed=3)
    source = tmp_path_factory.mktemp("yuan") / "amounts.csv"
    write_episodes(template, source)
    frame = pl.read_csv(source, infer_schema=False).with_columns(pl.Series("class_a", texts, dtype=pl.String))
    frame.write_csv(source)
    expected = {}
    for line, text in enumerate(texts, start=2):
        try:
            expected[line] = parse_yuan(text)
        except InvalidInput:
            expected[line] = None
    try:
        parsed = read_episodes(source)["class_a"].to_list()
        rejected = set()
    except BadRows as error:
        parsed = None
        rejected = {p.row for p in error.problems if p.column == "class_a"}
    assert rejected == {line for line, value in expected.items() if value is None}
    if parsed is not None:
        assert parsed == list(expected.values())
