"""`cdrwatch evaluate --feedback --from D1 --to D2`: field precision, (raided + confirmed) / visited, of
the leads of a range of nights, per priority, per signal combination and per district.

What the field units answered (lake/feedback) is the only truth a real deployment has. Each lead
den counts once; its visit is the latest outcome reported for it, attributed to the lead the
officers acted on: the den's row of the latest night before the visit (else its first lead night
in the range), so a den that turned high only after the raid does not count as a high-priority hit.
Everything here is small: Polars, no Spark. The pure functions are shared with the report; lake/feedback
is read, and its latest visit per den chosen, by jobs.feedback.store (one rule for every reader).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from jobs.config import Config
from jobs.dates import nights
from jobs.errors import CdrwatchError
from jobs.feedback.store import latest_visits, read_feedback
from jobs.io.lake_polars import has_day, read_days
from jobs.io.layout import table_path
from schemas.tables import DEN, FOUND_OUTCOMES, OUTCOMES

PRIORITIES = ("high", "medium", "low")
NO_SIGNALS = "none"
NO_DISTRICT = "(no district)"
TOTAL = "all"
NO_FEEDBACK = "no field feedback in lake/feedback: import some with cdrwatch feedback import"
DEN_COLUMNS = ["den_id", "priority", "district", "signals", "suppressed"]
LEAD_SCHEMA = {
    "den_id": pl.String,
    "night": pl.Date,
    "priority": pl.String,
    "signals": pl.String,
    "district": pl.String,
    "visited_on": pl.Date,
    "outcome": pl.String,
}
"""One row per lead den: the night of the lead it is counted under, and its visit (null: not visited)."""
OVER_TIME_SCHEMA = {"visited_on": pl.Date, "outcome": pl.String, "visits": pl.Int64}


# ---------------------------------------------------------------- reads


def read_den_nights(config: Config, nights: list[dt.date]) -> pl.DataFrame:
    """lake/dens rows of those of the nights that have a partition: DEN_COLUMNS and `date`. A partition
    written before the field-history columns reads `suppressed` as null (a lead)."""
    return read_days(config, DEN, nights, DEN_COLUMNS)


# ---------------------------------------------------------------- pure: leads, visits, attribution


def lead_rows(dens: pl.DataFrame) -> pl.DataFrame:
    """The den rows that were leads on their night (`suppressed` null), signals as one sorted
    combination ('congestion+goip'), a missing district named."""
    combination = pl.col("signals").list.sort().list.join("+")
    return dens.filter(pl.col("suppressed").is_null()).with_columns(
        pl.when(combination.fill_null("") == "").then(pl.lit(NO_SIGNALS)).otherwise(combination).alias("signals"),
        pl.col("district").fill_null(NO_DISTRICT),
    )


def attribute_visits(leads: pl.DataFrame, feedback: pl.DataFrame, visited_until: dt.date | None = None) -> pl.DataFrame:
    """One row per lead den (LEAD_SCHEMA). Its visit: the latest outcome among its feedback rows on
    or after its first lead night (up to `visited_until` when given). A visited den counts under
    its lead of the latest night before the visit, else its first; an unvisited one under its latest."""
    first_night = leads.group_by("den_id").agg(pl.col("date").min().alias("first_night"))
    relevant = feedback.join(first_night, on="den_id").filter(pl.col("visited_on") >= pl.col("first_night"))
    if visited_until is not None:
        relevant = relevant.filter(pl.col("visited_on") <= visited_until)
    visits = latest_visits(relevant).select("den_id", "visited_on", "outcome")
    before = pl.when(pl.col("date") < pl.col("visited_on")).then(pl.col("date"))
    acted_on = (
        pl.when(pl.col("visited_on").is_null())
        .then(pl.col("date").max())
        .otherwise(pl.coalesce(before.max(), pl.col("date").min()))
        .over("den_id")
    )
    return (
        leads.join(visits, on="den_id", how="left")
        .filter(pl.col("date") == acted_on)
        .select(
            pl.col("den_id"), pl.col("date").alias("night"), "priority", "signals", "district", "visited_on", "outcome"
        )
        .cast(LEAD_SCHEMA)
        .sort("den_id")
    )


def precision_table(leads: pl.DataFrame, by: str) -> pl.DataFrame:
    """Per value of `by`: leads, visited, one column per outcome, and precision = (raided + confirmed)
    / visited (null when none was visited)."""
    counts = (
        leads.group_by(by)
        .agg(
            pl.len().alias("leads"),
            pl.col("outcome").is_not_null().sum().alias("visited"),
            *((pl.col("outcome") == o).sum().alias(o) for o in OUTCOMES),
        )
        .cast({c: pl.Int64 for c in ("leads", "visited", *OUTCOMES)})
    )
    found = pl.sum_horizontal(FOUND_OUTCOMES)
    return counts.with_columns(pl.when(pl.col("visited") > 0).then(found / pl.col("visited")).alias("precision"))


def by_priority(leads: pl.DataFrame) -> pl.DataFrame:
    """precision_table per priority, high, medium, low (each, even without leads), then any other."""
    table = precision_table(leads, "priority")
    known = pl.DataFrame({"priority": list(PRIORITIES)})
    rows = known.join(table, on="priority", how="left").with_columns(pl.col("leads", "visited", *OUTCOMES).fill_null(0))
    return pl.concat([rows, table.filter(~pl.col("priority").is_in(PRIORITIES)).sort("priority")])


def by_signals(leads: pl.DataFrame) -> pl.DataFrame:
    """precision_table per signal combination, most leads first."""
    return precision_table(leads, "signals").sort(["leads", "signals"], descending=[True, False])


def by_district(leads: pl.DataFrame) -> pl.DataFrame:
    """precision_table per district, by name."""
    return precision_table(leads, "district").sort("district")


def total(leads: pl.DataFrame) -> dict:
    """The precision_table row of every lead together (key `what` = 'all')."""
    everyone = precision_table(leads.with_columns(pl.lit(TOTAL).alias("what")), "what")
    if everyone.is_empty():
        return {"what": TOTAL, "leads": 0, "visited": 0, **{o: 0 for o in OUTCOMES}, "precision": None}
    return everyone.row(0, named=True)


def outcomes_over_time(visits: pl.DataFrame) -> pl.DataFrame:
    """visited_on, outcome, visits: visits per day and outcome (outcomes in OUTCOMES order)."""
    order = pl.col("outcome").replace_strict(list(OUTCOMES), list(range(len(OUTCOMES))), default=len(OUTCOMES))
    return (
        visits.drop_nulls("outcome")
        .group_by("visited_on", "outcome")
        .agg(pl.len().alias("visits"))
        .cast(OVER_TIME_SCHEMA)
        .sort(pl.col("visited_on"), order, pl.col("outcome"))
    )


def not_visited(leads: pl.DataFrame) -> tuple[int, int]:
    """(leads without a visit, leads)."""
    return int(leads["outcome"].is_null().sum()), leads.height


# ---------------------------------------------------------------- the range


@dataclass
class FieldPrecision:
    """The leads of nights first..last and what the field found there."""

    first: dt.date
    last: dt.date
    nights: int  # nights of the range with a lake/dens partition
    feedback_rows: int  # rows in lake/feedback (every den, every date): 0 = nothing imported
    leads: pl.DataFrame  # LEAD_SCHEMA, from attribute_visits

    @property
    def by_priority(self) -> pl.DataFrame:
        return by_priority(self.leads)

    @property
    def by_signals(self) -> pl.DataFrame:
        return by_signals(self.leads)

    @property
    def by_district(self) -> pl.DataFrame:
        return by_district(self.leads)

    @property
    def total(self) -> dict:
        return total(self.leads)

    @property
    def over_time(self) -> pl.DataFrame:
        return outcomes_over_time(self.leads)

    @property
    def not_visited(self) -> tuple[int, int]:
        return not_visited(self.leads)

    def table(self, what: str):
        """`what` = priority | signals | district: a rich table with the total row last; values escaped."""
        from rich.markup import escape
        from rich.table import Table

        frame = {"priority": self.by_priority, "signals": self.by_signals, "district": self.by_district}[what]
        per = {"signals": "signal combination"}.get(what, what)
        table = Table(title=f"field precision {self.first}..{self.last} per {per}: (raided + confirmed) / visited")
        for column in (what, "leads", "visited", *OUTCOMES, "precision"):
            table.add_column(
                column, justify="left" if column == what else "right", no_wrap=column != what, overflow="fold"
            )
        for row in frame.iter_rows(named=True):
            table.add_row(*(escape(cell) for cell in _cells(row, what)))
        table.add_section()
        table.add_row(*(escape(cell) for cell in _cells(self.total, "what")))
        return table

    def over_time_table(self):
        """Visits per visit day, one column per outcome (each den's latest outcome)."""
        from rich.table import Table

        table = Table(title=f"field outcomes of the leads of {self.first}..{self.last}, per visit day")
        for column in ("visited on", *OUTCOMES, "visits"):
            table.add_column(column, justify="left" if column == "visited on" else "right", no_wrap=True)
        counts = {(d, o): n for d, o, n in self.over_time.iter_rows()}
        for day in sorted({d for d, _ in counts}):
            values = [counts.get((day, o), 0) for o in OUTCOMES]
            table.add_row(day.isoformat(), *(str(v) for v in values), str(sum(values)))
        return table

    def summary_line(self) -> str:
        waiting, leads = self.not_visited
        share = f" ({waiting / leads:.0%})" if leads else ""
        return (
            f"leads not yet visited: {waiting} of {leads}{share} · {self.nights} of "
            f"{len(nights(self.first, self.last, 'evaluate'))} nights in lake/dens"
        )

    def renderables(self) -> list:
        """What `cdrwatch evaluate --feedback --from --to` prints."""
        if self.feedback_rows == 0:
            return [NO_FEEDBACK]
        return [
            self.table("priority"),
            self.table("signals"),
            self.table("district"),
            self.summary_line(),
            self.over_time_table(),
        ]


def _cells(row: dict, key: str) -> list[str]:
    precision = row["precision"]
    return [
        str(row[key]),
        *(str(row[c]) for c in ("leads", "visited", *OUTCOMES)),
        "–" if precision is None else f"{precision:.2f}",
    ]


def field_precision(config: Config, first: dt.date, last: dt.date) -> FieldPrecision:
    """The leads of lake/dens for the nights first..last against lake/feedback; an error when the
    range has no den."""
    written = [night for night in nights(first, last, "evaluate") if has_day(config, DEN, night)]
    dens = read_den_nights(config, written)
    if dens.is_empty():
        why = (
            f"its {len(written)} night{'s' if len(written) > 1 else ''} in the lake hold no den"
            if written
            else f"run cdrwatch nightly --from {first} --to {last} first"
        )
        raise CdrwatchError(f"{table_path(config, DEN)}: no dens for {first}..{last} ({why})")
    feedback = read_feedback(config)
    return FieldPrecision(first, last, len(written), feedback.height, attribute_visits(lead_rows(dens), feedback))
