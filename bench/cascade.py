"""Benchmark the vectorised cascade (settle_frame) against the scalar explanation path.

    uv run python bench/cascade.py [--episodes N] [--seed S] [--scalar-sample K]

Generates N synthetic episodes in memory (Int64 person keys), times
`settle_frame` alone, checks that every row's layers plus residual equal its
total (and that total is the episode's cost), then settles K persons' years
through `explain_person_year` — which also explains every line — and checks
it agrees with the vectorised result to the fen. The last line is the figure:

    cascade episodes=N seconds=S episodes_per_s=R vs_scalar=X peak_rss_mb=M
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import polars as pl

from gongji.episodes.synthetic import generate_episodes
from gongji.rules.cascade import AMOUNT_OUTPUT_COLUMNS, LAYERS, EpisodeInput, explain_person_year, settle_frame
from gongji.rules.params import load_parameter_book


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scalar-sample", type=int, default=2000, help="persons whose year is settled one by one")
    args = parser.parse_args()

    book = load_parameter_book()
    started = time.perf_counter()
    episodes = generate_episodes(args.episodes, seed=args.seed, with_id_numbers=False)
    print(
        f"generated {episodes.height:,} episodes of {episodes['person_key'].n_unique():,} persons "
        f"in {time.perf_counter() - started:.3f} s"
    )

    started = time.perf_counter()
    settled = settle_frame(episodes, book)
    seconds = time.perf_counter() - started
    rate = episodes.height / seconds
    print(f"settle_frame: {seconds:.3f} s")
    if not _check_totals(episodes, settled):
        return 1

    scalar_rate = _scalar_rate(episodes, settled, book, args.scalar_sample, args.seed)
    if scalar_rate is None:
        return 1
    print(f"explain_person_year: {scalar_rate:,.0f} episodes/s on {args.scalar_sample:,} persons")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    print(
        f"cascade episodes={episodes.height} seconds={seconds:.3f} episodes_per_s={rate:.0f} "
        f"vs_scalar={rate / scalar_rate:.1f} peak_rss_mb={peak_mb:.0f}"
    )
    return 0


def _check_totals(episodes: pl.DataFrame, settled: pl.DataFrame) -> bool:
    """Layers + residual == total == class A + class B + out-of-catalogue, on every row, in input order."""
    cost = episodes.select(
        pl.col("episode_id"), (pl.col("class_a") + pl.col("class_b") + pl.col("out_of_catalogue")).alias("cost")
    )
    broken = settled.with_columns(cost).filter(
        (pl.sum_horizontal(*LAYERS, "residual") != pl.col("total"))
        | (pl.col("total") != pl.col("cost"))
        | (pl.col("episode_id") != cost["episode_id"])
    )
    if broken.height:
        print(f"FAILED: {broken.height} rows where layers + residual != total or out of order", file=sys.stderr)
        print(broken.head(), file=sys.stderr)
    return broken.height == 0


def _scalar_rate(episodes: pl.DataFrame, settled: pl.DataFrame, book, persons: int, seed: int) -> float | None:
    """Episodes per second of the scalar path over `persons` whole person-years; None if it disagrees."""
    keys = episodes["person_key"].unique().sample(min(persons, episodes["person_key"].n_unique()), seed=seed)
    sample = episodes.filter(pl.col("person_key").is_in(keys.implode()))
    sample = sample.with_columns(pl.col("person_key").cast(pl.String))
    by_person: dict[str, list[EpisodeInput]] = {}
    for row in sample.iter_rows(named=True):
        by_person.setdefault(row["person_key"], []).append(EpisodeInput(**row))

    started = time.perf_counter()
    results = [s for year in by_person.values() for s in explain_person_year(year, book)]
    seconds = time.perf_counter() - started

    scalar = pl.DataFrame(
        [{"episode_id": s.episode_id, **{c: s.amounts[c] for c in AMOUNT_OUTPUT_COLUMNS}} for s in results],
        schema=settled.schema,
    )
    disagree = scalar.join(settled, on="episode_id", how="left", suffix="_vectorised").filter(
        pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"{c}_vectorised")) for c in AMOUNT_OUTPUT_COLUMNS)
    )
    if disagree.height:
        print(f"FAILED: scalar and vectorised paths disagree on {disagree.height} episodes", file=sys.stderr)
        print(disagree.head(), file=sys.stderr)
        return None
    return len(results) / seconds


if __name__ == "__main__":
    sys.exit(main())
