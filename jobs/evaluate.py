"""`cdrwatch evaluate --truth DIR --date D`: the night's flags scored against a labelled scenario.

How an analyst tunes thresholds: simulate a city (its `truth/` says which SIMs were dens, which
sites were congested and why, who the couriers, the registered call centre and the crowd were),
run the pipeline, change a threshold with `--set`, and compare the tables. Flags and labels are
small, so this runs on Polars; no Spark session is started.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from jobs.io import lake, lake_polars
from jobs.config import Config
from jobs.errors import CdrwatchError
from schemas.tables import FLAG

HIGH_SCORE = 0.5   # a cell flag at or above this claims "den here"; below it is context (a crowd)


@dataclass
class Score:
    name: str
    flagged: int
    true_positives: int
    relevant: int
    note: str = ""

    @property
    def precision(self) -> float:
        return self.true_positives / self.flagged if self.flagged else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.relevant if self.relevant else 1.0


@dataclass
class Evaluation:
    day: dt.date
    scores: list[Score]
    hard_negatives_flagged: dict[str, list[str]]   # kind -> flagged numbers

    def score(self, name: str) -> Score:
        return next(s for s in self.scores if s.name == name)

    def table(self):
        """A rich table; every value is escaped, as names and numbers come from the data."""
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=f"evaluate {self.day}: flags against truth")
        for column in ("what", "flagged", "true pos.", "relevant", "precision", "recall", "note"):
            table.add_column(column, justify="left" if column in ("what", "note") else "right")
        for s in self.scores:
            table.add_row(escape(s.name), str(s.flagged), str(s.true_positives), str(s.relevant),
                          f"{s.precision:.2f}", f"{s.recall:.2f}", escape(s.note))
        for kind, numbers in sorted(self.hard_negatives_flagged.items()):
            table.add_row(escape(f"hard negatives: {kind}"), str(len(numbers)), "", "", "", "",
                          escape(", ".join(numbers[:3]) + (" ..." if len(numbers) > 3 else "")))
        return table


def read_flags(config: Config, day: dt.date) -> pl.DataFrame:
    """detector, entity_type, entity_id, score of the night's flags; an error when detect has not run."""
    if not lake_polars.has_day(config, FLAG, day):
        raise CdrwatchError(f"{lake.partition_path(config, FLAG, day)}: no flags for {day} "
                            f"(run cdrwatch detect --date {day} first)")
    return lake_polars.read_day(config, FLAG, day, ["detector", "entity_type", "entity_id", "score"])


def evaluate(flags: pl.DataFrame, truth: Path, day: dt.date) -> Evaluation:
    """Precision and recall of each detector's SIM flags, of their union, and of the cell flags."""
    date = day.isoformat()
    den_sims = _read(truth, "den_sims.csv").filter(pl.col("date") == date)
    dens = _read(truth, "dens.csv").filter(pl.col("date") == date)
    kind_of = dict(zip(dens["den_id"], dens["kind"]))
    den_numbers = set(den_sims["msisdn"])
    box_numbers = {n for n, d in zip(den_sims["msisdn"], den_sims["den_id"]) if kind_of.get(d) != "room"}

    sims = flags.filter(pl.col("entity_type") == "msisdn")
    scores = []
    for detector in sorted(set(sims["detector"])):
        flagged = set(sims.filter(pl.col("detector") == detector)["entity_id"])
        scores.append(Score(f"{detector} (SIMs)", len(flagged), len(flagged & den_numbers), len(den_numbers)))
        if detector == "goip":
            boxes = flagged & box_numbers
            scores.append(Score("goip (SIMs of boxes)", len(boxes), len(boxes), len(box_numbers),
                                note=f"recall over the {len(box_numbers)} SIMs in GOIP/SMS boxes"))
    union = set(sims["entity_id"])
    scores.append(Score("all SIM flags (union)", len(union), len(union & den_numbers), len(den_numbers)))
    scores.append(_cells(flags, _read(truth, "congestion.csv").filter(pl.col("date") == date)))

    negatives = _read(truth, "hard_negatives.csv").filter((pl.col("date").is_null()) | (pl.col("date") == date))
    flagged_negatives = {kind: sorted(union & set(negatives.filter(pl.col("kind") == kind)["number"]))
                         for kind in sorted(set(negatives["kind"]))}
    return Evaluation(day, scores, flagged_negatives)


def _cells(flags: pl.DataFrame, congestion: pl.DataFrame) -> Score:
    """Sites, not cells: a den site counts as found when one of its cells is flagged high; a high
    flag on the crowd's site or on a site with no den is a false positive."""
    cells = flags.filter((pl.col("entity_type") == "cell") & (pl.col("score") >= HIGH_SCORE))
    site_of = {cell: (row["cause"], row["den_id"] or "crowd")
               for row in congestion.iter_rows(named=True) for cell in row["cells"].split(";")}
    flagged_sites = {site_of.get(cell, ("none", cell)) for cell in cells["entity_id"]}
    den_sites = {(cause, den) for cause, den in site_of.values() if cause == "den"}
    found = flagged_sites & den_sites
    crowd = [s for s in flagged_sites if s[0] == "crowd"]
    return Score(f"congestion (sites, score >= {HIGH_SCORE})", len(flagged_sites), len(found), len(den_sites),
                 note="crowd site flagged high" if crowd else "")


def _read(truth: Path, name: str) -> pl.DataFrame:
    path = Path(truth) / name
    if not path.is_file():
        raise CdrwatchError(f"{path}: not found (is --truth the simulator's truth/ folder?)")
    return pl.read_csv(path, infer_schema=False)
