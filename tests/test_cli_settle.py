"""`gongji generate episodes` and `gongji settle` end to end through the command line."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from gongji.batch.files import fen_from_yuan_text
from gongji.cli import app
from gongji.rules.cascade import AMOUNT_OUTPUT_COLUMNS, LAYERS, OUTPUT_COLUMNS

runner = CliRunner()


@pytest.fixture(scope="module")
def episodes_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "episodes.csv"
    result = runner.invoke(app, ["generate", "episodes", "-n", "2000", "-o", str(path), "--seed", "9"])
    assert result.exit_code == 0, result.output
    assert "2,000 episodes" in result.output
    return path


def as_fen(frame: pl.DataFrame, columns) -> pl.DataFrame:
    return frame.with_columns(fen_from_yuan_text(pl.col(c)).alias(c) for c in columns)


def test_settle_csv_one_row_per_episode_and_layers_add_up(episodes_csv, tmp_path):
    output = tmp_path / "settled.csv"
    result = runner.invoke(app, ["settle", str(episodes_csv), "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert "2,000" in result.stdout and "惠民保" in result.stdout

    settled = as_fen(pl.read_csv(output, infer_schema=False), AMOUNT_OUTPUT_COLUMNS)
    episodes = as_fen(pl.read_csv(episodes_csv, infer_schema=False), ("class_a", "class_b", "out_of_catalogue"))
    assert settled.columns == list(OUTPUT_COLUMNS)
    assert "id_number" not in settled.columns
    assert settled["episode_id"].to_list() == episodes["episode_id"].to_list()
    text = output.read_text(encoding="utf-8")
    assert not any(number in text for number in episodes["id_number"].head(50))
    assert (settled.select(pl.sum_horizontal(*LAYERS, "residual")).to_series() == settled["total"]).all()
    cost = episodes.select(pl.sum_horizontal("class_a", "class_b", "out_of_catalogue")).to_series()
    assert (settled["total"] == cost).all()
    assert settled.select(pl.col(AMOUNT_OUTPUT_COLUMNS).min()).min_horizontal().item() >= 0


def test_settle_to_parquet_in_fen(episodes_csv, tmp_path):
    output = tmp_path / "settled.parquet"
    result = runner.invoke(app, ["settle", str(episodes_csv), "-o", str(output)])
    assert result.exit_code == 0, result.output
    settled = pl.read_parquet(output)
    assert settled.height == 2000
    assert all(settled[c].dtype == pl.Int64 for c in AMOUNT_OUTPUT_COLUMNS)


def rewrite(source: Path, target: Path, row: int, column: str, value: str) -> Path:
    with source.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rows[row][column] = value
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return target


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("class_b", "12.3x", "not a yuan amount"),
        ("id_number", "33010019800101001", "17 digits followed by a digit or X"),
    ],
)
def test_bad_row_exits_2_names_line_and_column_and_writes_nothing(episodes_csv, tmp_path, column, value, message):
    bad = rewrite(episodes_csv, tmp_path / "bad.csv", 41, column, value)
    output = tmp_path / "settled.csv"
    result = runner.invoke(app, ["settle", str(bad), "-o", str(output)])
    assert result.exit_code == 2
    assert re.search(rf"\b43\b[^\n]*{column}", result.stderr), result.stderr  # data row 42 is line 43
    assert message.split()[0] in result.stderr
    assert "header is line 1" in result.stderr
    assert not output.exists()
    assert list(tmp_path.iterdir()) == [bad]


def test_missing_column_and_bad_params_exit_2(episodes_csv, tmp_path):
    frame = pl.read_csv(episodes_csv, infer_schema=False).drop("scheme")
    frame.write_csv(tmp_path / "no-scheme.csv")
    result = runner.invoke(app, ["settle", str(tmp_path / "no-scheme.csv"), "-o", str(tmp_path / "out.csv")])
    assert result.exit_code == 2
    assert "scheme" in result.stderr

    result = runner.invoke(
        app, ["settle", str(episodes_csv), "-o", str(tmp_path / "out.csv"), "--params", str(tmp_path / "none")]
    )
    assert result.exit_code == 2
    assert not (tmp_path / "out.csv").exists()


def test_generate_rejects_unknown_region(tmp_path):
    output = tmp_path / "e.csv"
    result = runner.invoke(app, ["generate", "episodes", "-n", "10", "-o", str(output), "--region", "990100"])
    assert result.exit_code == 2
    assert "province" in result.stderr
    assert not output.exists()


def test_an_id_number_in_the_wrong_column_is_never_printed(episodes_csv, tmp_path):
    """The reproduction: a raw ID number in another column used to be echoed in the rejection table."""
    rows = list(csv.DictReader(episodes_csv.open(encoding="utf-8")))[:3]
    number = rows[0]["id_number"]
    rows[0]["scheme"] = number
    rows[1]["region"] = number
    rows[2]["class_a"] = number
    bad = tmp_path / "bad.csv"
    with bad.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = runner.invoke(app, ["settle", str(bad), "-o", str(tmp_path / "out.csv")])
    assert result.exit_code == 2
    assert "scheme" in result.output and "region" in result.output
    assert number not in result.output and number[6:14] not in result.output
