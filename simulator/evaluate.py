"""`cdrwatch evaluate --truth DIR --date D`: the night's flags scored against a labelled scenario;
`--from D1 --to D2`: the dens and leads of those nights, per den kind (`evaluate_range`).

How an analyst tunes thresholds: simulate a city (its `truth/` says which SIMs were dens, which
sites were congested and why, who the couriers, the registered call centre and the crowd were),
run the pipeline, change a threshold with `--set`, and compare the tables. Flags, dens and labels
are small, so this runs on Polars; no Spark session is started.
"""

from __future__ import annotations

import csv
import datetime as dt
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from detectors.rules.sites import distance_m
from jobs.config import Config
from jobs.dates import nights
from jobs.errors import CdrwatchError
from jobs.io import lake_polars, layout, summaries
from jobs.numbers import e164, national
from schemas.tables import DEN, FLAG, SPOOFED, VICTIMS

PHONE_DENS = ("room", "low_slow")  # dens of ordinary handsets, not GOIP/SMS boxes
HIGH_SCORE = 0.5  # a cell flag at or above this claims "den here"; below it is context (a crowd)


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
    hard_negatives_flagged: dict[str, list[str]]  # kind -> flagged numbers

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
            table.add_row(
                escape(s.name),
                str(s.flagged),
                str(s.true_positives),
                str(s.relevant),
                f"{s.precision:.2f}",
                f"{s.recall:.2f}",
                escape(s.note),
            )
        for kind, numbers in sorted(self.hard_negatives_flagged.items()):
            table.add_row(
                escape(f"hard negatives: {kind}"),
                str(len(numbers)),
                "",
                "",
                "",
                "",
                escape(", ".join(numbers[:3]) + (" ..." if len(numbers) > 3 else "")),
            )
        return table


def read_flags(config: Config, day: dt.date) -> pl.DataFrame:
    """detector, entity_type, entity_id, score of the night's flags; an error when detect has not run."""
    if not lake_polars.has_day(config, FLAG, day):
        raise CdrwatchError(
            f"{layout.partition_path(config, FLAG, day)}: no flags for {day} (run cdrwatch detect --date {day} first)"
        )
    return lake_polars.read_day(config, FLAG, day, ["detector", "entity_type", "entity_id", "score"])


def evaluate(flags: pl.DataFrame, truth: Path, day: dt.date) -> Evaluation:
    """Precision and recall of each detector's SIM flags, of their union, and of the cell flags."""
    date = day.isoformat()
    den_sims = _read(truth, "den_sims.csv").filter(pl.col("date") == date)
    dens = _read(truth, "dens.csv").filter(pl.col("date") == date)
    kind_of = dict(zip(dens["den_id"], dens["kind"]))
    den_numbers = set(den_sims["msisdn"])
    box_numbers = {n for n, d in zip(den_sims["msisdn"], den_sims["den_id"]) if kind_of.get(d) not in PHONE_DENS}

    sims = flags.filter(pl.col("entity_type") == "msisdn")
    scores = []
    for detector in sorted(set(sims["detector"])):
        flagged = set(sims.filter(pl.col("detector") == detector)["entity_id"])
        scores.append(Score(f"{detector} (SIMs)", len(flagged), len(flagged & den_numbers), len(den_numbers)))
        if detector == "goip":
            boxes = flagged & box_numbers
            scores.append(
                Score(
                    "goip (SIMs of boxes)",
                    len(boxes),
                    len(boxes),
                    len(box_numbers),
                    note=f"recall over the {len(box_numbers)} SIMs in GOIP/SMS boxes",
                )
            )
    union = set(sims["entity_id"])
    scores.append(Score("all SIM flags (union)", len(union), len(union & den_numbers), len(den_numbers)))
    scores.append(_cells(flags, _read(truth, "congestion.csv").filter(pl.col("date") == date)))

    negatives = _read(truth, "hard_negatives.csv").filter((pl.col("date").is_null()) | (pl.col("date") == date))
    flagged_negatives = {
        kind: sorted(union & set(negatives.filter(pl.col("kind") == kind)["number"]))
        for kind in sorted(set(negatives["kind"]))
    }
    return Evaluation(day, scores, flagged_negatives)


def _cells(flags: pl.DataFrame, congestion: pl.DataFrame) -> Score:
    """Sites, not cells: a den site counts as found when one of its cells is flagged high; a high
    flag on the crowd's site or on a site with no den is a false positive."""
    cells = flags.filter((pl.col("entity_type") == "cell") & (pl.col("score") >= HIGH_SCORE))
    site_of = {
        cell: (row["cause"], row["den_id"] or "crowd")
        for row in congestion.iter_rows(named=True)
        for cell in row["cells"].split(";")
    }
    flagged_sites = {site_of.get(cell, ("none", cell)) for cell in cells["entity_id"]}
    den_sites = {(cause, den) for cause, den in site_of.values() if cause == "den"}
    found = flagged_sites & den_sites
    crowd = [s for s in flagged_sites if s[0] == "crowd"]
    return Score(
        f"congestion (sites, score >= {HIGH_SCORE})",
        len(flagged_sites),
        len(found),
        len(den_sites),
        note="crowd site flagged high" if crowd else "",
    )


def _read(truth: Path, name: str) -> pl.DataFrame:
    path = Path(truth) / name
    if not path.is_file():
        raise CdrwatchError(f"{path}: not found (is --truth the simulator's truth/ folder?)")
    return pl.read_csv(path, infer_schema=False)


# ---------------------------------------------------------------- a range of nights: dens and leads

LED_SHARE = 0.5  # a lead finds a den when it holds more than this share of the den's SIMs that night
SPLIT_SHARE = 0.2  # a lake den holding at least this share of a den's SIMs is one of the places it was reported at
PURE_SHARE = 0.9  # a lake den is a true one when at least this share of its members are den SIMs that night
RANGE_TABLES = ((DEN, "dens"), (VICTIMS, "dens"), (FLAG, "detect"))  # what the range reads, and the step writing it


@dataclass(frozen=True)
class DenNight:
    """One truth den on one night, as the lake saw it."""

    day: dt.date
    den_id: str
    kind: str
    sims: int
    led_by: str | None  # den_id of the lead holding most of its SIMs (> LED_SHARE), None: not led
    places: int  # lake dens holding >= SPLIT_SHARE of its SIMs
    error_m: float | None  # distance from the truth position to that lead's


@dataclass
class KindScore:
    """One den kind over the range (or every kind: `RangeEvaluation.overall.dens`). The first nights
    and the delay are those of its slowest den: a kind is found when all its dens are."""

    kind: str
    den_nights: int
    led: int
    first_truth_night: dt.date | None
    first_lead_night: dt.date | None
    first_lead_delay: int | None  # nights from the slowest den's first truth night to its first lead; None: never led
    leads_per_den: float | None  # mean `places` over den-nights with at least one: 1.0 = one place, one lead
    id_stability: float | None  # share of led den-nights carrying their den's most common den_id
    victims: int
    victims_found: int
    position_error_m: float | None  # median over led den-nights

    @property
    def recall(self) -> float:
        return self.led / self.den_nights if self.den_nights else 1.0

    @property
    def victims_warned(self) -> float | None:
        """Share of the truth victims in lake/victims of their night; None when the kind had none."""
        return self.victims_found / self.victims if self.victims else None


@dataclass
class Overall:
    dens: KindScore  # every kind pooled (kind "all")
    lake_dens: int  # rows of lake/dens over the range
    pure_dens: int  # of them, with >= PURE_SHARE of members den SIMs that night

    @property
    def recall(self) -> float:
        return self.dens.recall

    @property
    def lead_precision(self) -> float | None:
        return self.pure_dens / self.lake_dens if self.lake_dens else None

    @property
    def victims_warned(self) -> float | None:
        return self.dens.victims_warned

    @property
    def id_stability(self) -> float | None:
        return self.dens.id_stability

    @property
    def leads_per_den(self) -> float | None:
        return self.dens.leads_per_den


@dataclass
class RangeEvaluation:
    first: dt.date
    last: dt.date
    by_kind: dict[str, KindScore]
    by_den: dict[str, KindScore]  # the same scores per truth den (kind = den_id)
    overall: Overall
    den_nights: list[DenNight]
    negatives: dict[str, int]  # hard-negative kind -> its numbers active in the range
    negatives_in_flags: dict[str, list[str]]  # kind -> sorted numbers flagged on a night they were negatives
    negatives_in_leads: dict[str, list[str]]  # kind -> sorted numbers in a lake den on such a night
    negative_detectors: dict[str, dict[str, list[str]]]  # kind -> flagged number -> its detectors
    spoofing: SpoofingEvaluation | None = None  # None: the truth has no spoofed_legs.csv (an older run)

    def table(self):
        """Per den kind, with the pooled line last; every value escaped."""
        from rich.markup import escape
        from rich.table import Table

        table = Table(
            title=f"evaluate {self.first}..{self.last}: dens and leads per den kind "
            "(first, 1st lead: nights of its slowest den)"
        )
        for column in KIND_COLUMNS:
            table.add_column(
                column, justify="left" if column in ("kind", "first", "1st lead") else "right", no_wrap=True
            )
        for score in self.by_kind.values():
            table.add_row(*(escape(cell) for cell in _kind_cells(score)))
        table.add_section()
        table.add_row(*(escape(cell) for cell in _kind_cells(self.overall.dens)))
        return table

    def den_table(self):
        """Per truth den: which den of a kind is the slow, split or unstable one, and its lead's id."""
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=f"evaluate {self.first}..{self.last}: per truth den")
        shown = [
            KIND_COLUMNS.index(c) for c in ("nights", "led", "first", "1st lead", "delay", "leads/den", "id stab.")
        ]
        for column in ("den", "kind", *(KIND_COLUMNS[i] for i in shown), "lead id"):
            table.add_column(
                column,
                justify="left" if column in ("den", "kind", "first", "1st lead", "lead id") else "right",
                no_wrap=column != "lead id",
                overflow="fold",
            )
        for den_id, score in self.by_den.items():
            nights = [n for n in self.den_nights if n.den_id == den_id]
            ids = Counter(n.led_by for n in nights if n.led_by).most_common()
            lead_id = f"{ids[0][0]} ×{ids[0][1]}" + (f" +{len(ids) - 1} other" if len(ids) > 1 else "") if ids else ""
            cells = _kind_cells(score)
            table.add_row(*(escape(c) for c in (den_id, nights[0].kind, *(cells[i] for i in shown), lead_id)))
        return table

    def overall_line(self) -> str:
        from rich.markup import escape

        o = self.overall
        return escape(
            f"overall {self.first}..{self.last}: den recall {_ratio(o.recall)} ({o.dens.led}/{o.dens.den_nights} "
            f"den-nights), lead precision {_ratio(o.lead_precision)} ({o.pure_dens}/{o.lake_dens} lake dens with "
            f">= {PURE_SHARE:.0%} den SIMs), victims warned {_ratio(o.victims_warned)} "
            f"({o.dens.victims_found}/{o.dens.victims}), id stability {_ratio(o.id_stability)}, "
            f"leads per den {_ratio(o.leads_per_den)}"
        )

    def negatives_table(self):
        """Hard negatives per kind: flagged (by which detectors) and, separately, in a lake den."""
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=f"evaluate {self.first}..{self.last}: hard negatives (legitimate callers)")
        for column in ("kind", "numbers", "flagged", "flagged by", "flagged numbers", "in leads", "numbers in leads"):
            table.add_column(column, justify="right" if column in ("numbers", "flagged", "in leads") else "left")
        for kind, total in self.negatives.items():
            flagged, in_leads = self.negatives_in_flags[kind], self.negatives_in_leads[kind]
            by = Counter(d for ds in self.negative_detectors.get(kind, {}).values() for d in ds)
            table.add_row(
                escape(kind),
                str(total),
                str(len(flagged)),
                escape(", ".join(f"{d} {n}" for d, n in sorted(by.items()))),
                escape(_some(flagged)),
                str(len(in_leads)),
                escape(_some(in_leads)),
            )
        return table

    def renderables(self, per_den: bool = False) -> list:
        """What `cdrwatch evaluate --from --to` prints; the spoofing lines when the truth has them."""
        spoofing = self.spoofing.renderables() if self.spoofing is not None else []
        return [
            self.table(),
            *([self.den_table()] if per_den else []),
            self.overall_line(),
            *spoofing,
            self.negatives_table(),
        ]


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _some(numbers: list[str], shown: int = 3) -> str:
    return ", ".join(numbers[:shown]) + (" ..." if len(numbers) > shown else "")


KIND_COLUMNS = (
    "kind",
    "nights",
    "led",
    "recall",
    "first",
    "1st lead",
    "delay",
    "leads/den",
    "id stab.",
    "victims warned",
    "error m",
)


def _kind_cells(s: KindScore) -> list[str]:
    """A KindScore as KIND_COLUMNS: nights are den-nights in truth, dates month-day, error in metres."""

    def night(day):
        return day.strftime("%m-%d") if day else None

    return [
        s.kind,
        str(s.den_nights),
        str(s.led),
        _ratio(s.recall),
        night(s.first_truth_night) or "–",
        night(s.first_lead_night) or "never",
        "never" if s.first_lead_delay is None else str(s.first_lead_delay),
        _ratio(s.leads_per_den),
        _ratio(s.id_stability),
        f"{_ratio(s.victims_warned)} ({s.victims_found}/{s.victims})" if s.victims else "–",
        "–" if s.position_error_m is None else f"{s.position_error_m:,.0f}",
    ]


def range_nights(first: dt.date, last: dt.date) -> list[dt.date]:
    return nights(first, last, "evaluate")


def read_nights(config: Config, first: dt.date, last: dt.date) -> dict[str, pl.DataFrame]:
    """lake/dens (den_id, district, lat, lon, numbers: leads only, not the dens the field cleared),
    lake/victims (number) and lake/flags
    (detector, entity_type, entity_id) of every night, each with `date` (YYYY-MM-DD) first; an
    error naming the first missing partition and the command that writes it."""
    days = range_nights(first, last)
    missing = [
        (table, step, day)
        for day in days
        for table, step in RANGE_TABLES
        if not lake_polars.has_day(config, table, day)
    ]
    if missing:
        table, step, day = missing[0]
        nights = len({d for _, _, d in missing})
        more = (
            (
                f"; {nights} of the {len(days)} nights lack partitions: cdrwatch nightly --from {first} --to {last} "
                "writes them all"
            )
            if nights > 1
            else ""
        )
        raise CdrwatchError(
            f"{layout.partition_path(config, table, day)}: no {table.name} for {day} "
            f"(run cdrwatch {step} --date {day} first{more})"
        )
    columns = {
        DEN: ["den_id", "district", "lat", "lon", "numbers"],
        VICTIMS: ["number"],
        FLAG: ["detector", "entity_type", "entity_id"],
    }

    def leads_only(frame: pl.DataFrame) -> pl.DataFrame:  # a den the field cleared (suppressed) is no lead
        return frame.filter(pl.col("suppressed").is_null()) if "suppressed" in frame.columns else frame

    return {
        table.name: pl.concat(
            [
                leads_only(
                    lake_polars.read_day(config, table, day, names + (["suppressed"] if table is DEN else []))
                ).select(pl.lit(day.isoformat()).alias("date"), *names)
                for day in days
            ]
        )
        for table, names in columns.items()
    }


def evaluate_range(config: Config, truth: Path, first: dt.date, last: dt.date) -> RangeEvaluation:
    """The nights first..last of the lake scored against the simulator's truth (see `score_range`),
    with the spoofed legs and spoofing warnings (see `evaluate_spoofing`) when the truth has them."""
    evaluation = score_range(read_nights(config, first, last), Path(truth), first, last)
    evaluation.spoofing = evaluate_spoofing(config, Path(truth), first, last)
    return evaluation


def score_range(lake_nights: dict[str, pl.DataFrame], truth: Path, first: dt.date, last: dt.date) -> RangeEvaluation:
    """Per truth den-night: is it led (a lake den with lat, lon and district holding more than
    half of its SIMs that night), by which den_id, at what distance, and at how many places
    (lake dens holding >= 20 % of its SIMs); pooled per den, per kind and overall, with the
    victims found in lake/victims and the hard negatives in flags and in dens."""
    days = {d.isoformat() for d in range_nights(first, last)}
    in_range = pl.col("date").is_in(sorted(days))
    truth_dens = _truth(truth, "dens.csv", ("date", "den_id", "kind", "lat", "lon")).filter(in_range)
    den_sims = _truth(truth, "den_sims.csv", ("date", "den_id", "msisdn")).filter(in_range)
    truth_victims = _truth(truth, "victims.csv", ("date", "den_id", "number")).filter(in_range)
    negatives = _truth(truth, "hard_negatives.csv", ("number", "kind", "date"))

    sims: dict[tuple[str, str], set[str]] = defaultdict(set)
    for day, den_id, msisdn in den_sims.select("date", "den_id", "msisdn").iter_rows():
        sims[(day, den_id)].add(msisdn)
    lake_dens: dict[str, list[dict]] = defaultdict(list)
    for row in lake_nights["dens"].iter_rows(named=True):
        row["members"] = set(row["numbers"] or [])
        row["lead"] = all(row[c] not in (None, "") for c in ("lat", "lon", "district"))
        lake_dens[row["date"]].append(row)

    den_nights = []
    for row in truth_dens.sort("date", "den_id").iter_rows(named=True):
        mine = sims[(row["date"], row["den_id"])]
        held = sorted(
            ((len(mine & d["members"]), d) for d in lake_dens[row["date"]]), key=lambda hd: (-hd[0], hd[1]["den_id"])
        )
        leads = [(h, d) for h, d in held if d["lead"] and h > LED_SHARE * len(mine)]
        best = leads[0][1] if leads else None
        error = None
        if best is not None and row["lat"] not in (None, "") and row["lon"] not in (None, ""):
            error = float(distance_m(float(row["lat"]), float(row["lon"]), best["lat"], best["lon"]))
        den_nights.append(
            DenNight(
                dt.date.fromisoformat(row["date"]),
                row["den_id"],
                row["kind"],
                len(mine),
                best["den_id"] if best else None,
                sum(1 for h, _ in held if h and h >= SPLIT_SHARE * len(mine)),
                error,
            )
        )

    kind_of = dict(zip(truth_dens["den_id"], truth_dens["kind"]))
    warned = {(day, number) for day, number in lake_nights["victims"].select("date", "number").iter_rows()}
    victims: dict[str, list[bool]] = defaultdict(list)  # truth den_id -> found or not, per victim-night
    for day, den_id, number in truth_victims.select("date", "den_id", "number").iter_rows():
        victims[den_id].append((day, number) in warned)

    by_den = {
        den_id: _pooled(den_id, [n for n in den_nights if n.den_id == den_id], victims[den_id])
        for den_id in sorted({n.den_id for n in den_nights})
    }
    kinds = sorted({n.kind for n in den_nights})
    by_kind = {
        kind: _pooled(
            kind,
            [n for n in den_nights if n.kind == kind],
            [v for d, vs in victims.items() if kind_of.get(d) == kind for v in vs],
            [by_den[d] for d in by_den if kind_of[d] == kind],
        )
        for kind in kinds
    }
    pooled = _pooled(
        "all", den_nights, [v for d, vs in victims.items() if d in kind_of for v in vs], list(by_den.values())
    )

    truth_sims = defaultdict(set)
    for (day, _), numbers in sims.items():
        truth_sims[day] |= numbers
    everyone = [d for rows in lake_dens.values() for d in rows]
    pure = sum(
        1
        for d in everyone
        if d["members"] and len(d["members"] & truth_sims[d["date"]]) >= PURE_SHARE * len(d["members"])
    )
    overall = Overall(pooled, len(everyone), pure)
    return RangeEvaluation(
        first,
        last,
        by_kind,
        by_den,
        overall,
        den_nights,
        **_negatives(negatives, lake_nights["flags"], lake_dens, days),
    )


def _pooled(
    name: str, nights: list[DenNight], victims_found: list[bool], dens: list[KindScore] | None = None
) -> KindScore:
    """The scores of a set of den-nights; `dens` (their per-den scores) gives the slowest den's
    delay, else `nights` are one den's."""
    led = [n for n in nights if n.led_by]
    if not nights:
        first_truth = first_lead = delay = None
    elif dens is None:
        first_truth = min(n.day for n in nights)
        first_lead = min((n.day for n in led), default=None)
        delay = (first_lead - first_truth).days if first_lead else None
    else:
        slowest = max(
            dens, key=lambda s: (s.first_lead_delay is None, s.first_lead_delay or 0, -s.first_truth_night.toordinal())
        )
        first_truth, first_lead, delay = slowest.first_truth_night, slowest.first_lead_night, slowest.first_lead_delay
    stable = sum(
        Counter(n.led_by for n in led if n.den_id == den).most_common(1)[0][1] for den in {n.den_id for n in led}
    )
    places = [n.places for n in nights if n.places]
    errors = [n.error_m for n in led if n.error_m is not None]
    return KindScore(
        name,
        len(nights),
        len(led),
        first_truth,
        first_lead,
        delay,
        sum(places) / len(places) if places else None,
        stable / len(led) if led else None,
        len(victims_found),
        sum(victims_found),
        statistics.median(errors) if errors else None,
    )


def _negatives(negatives: pl.DataFrame, flags: pl.DataFrame, lake_dens: dict[str, list[dict]], days: set[str]) -> dict:
    """Hard negatives per kind that were flagged (with the detectors) or in a lake den, on a
    night they were negatives (an empty date: every night)."""
    active: dict[tuple[str, str], set[str]] = defaultdict(set)  # (night, number) -> its kinds that night
    for number, kind, day in negatives.select("number", "kind", "date").iter_rows():
        for night in days if day in (None, "") else {day} & days:
            active[(night, number)].add(kind)
    kinds = sorted(set(negatives["kind"]))
    totals = {kind: len({n for (_, n), ks in active.items() if kind in ks}) for kind in kinds}

    detectors: dict[str, dict[str, set[str]]] = {kind: defaultdict(set) for kind in kinds}
    numbers = sorted({n for _, n in active})
    sims = flags.filter((pl.col("entity_type") == "msisdn") & pl.col("entity_id").is_in(numbers))
    for day, detector, number in sims.select("date", "detector", "entity_id").iter_rows():
        for kind in active.get((day, number), ()):
            detectors[kind][number].add(detector)
    in_leads: dict[str, set[str]] = {kind: set() for kind in kinds}
    for day, rows in lake_dens.items():
        for d in rows:
            for number in d["members"]:
                for kind in active.get((day, number), ()):
                    in_leads[kind].add(number)
    return dict(
        negatives=totals,
        negatives_in_flags={kind: sorted(detectors[kind]) for kind in kinds},
        negatives_in_leads={kind: sorted(in_leads[kind]) for kind in kinds},
        negative_detectors={kind: {n: sorted(ds) for n, ds in sorted(detectors[kind].items())} for kind in kinds},
    )


def _truth(truth: Path, name: str, required: tuple[str, ...]) -> pl.DataFrame:
    """A truth CSV read by its header, as text; columns added later are optional, these are not."""
    frame = _read(truth, name)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise CdrwatchError(
            f"{Path(truth) / name}: no column {', '.join(missing)} (is --truth the simulator's truth/ folder?)"
        )
    return frame


# ---------------------------------------------------------------- a range of nights: caller-ID spoofing

SPOOFED_LEGS = "spoofed_legs.csv"
SPOOF_SKEW_S = 3.0  # a lake leg and a truth leg of one (receiver, presented, service) are one within this
EXAMPLES = 3  # false alarms and misses listed per night
WARNINGS_FILE = "warnings.csv"
LEG_KEY = ("receiver", "presented", "service")
LEG_SCHEMA = {
    "date": pl.String,
    "receiver": pl.String,
    "presented": pl.String,
    "service": pl.String,
    "start": pl.Datetime("us"),
    "carrier": pl.String,
}
"""A spoofed leg on either side: `start` in local wall-clock time of the conf timezone, `date` YYYY-MM-DD."""


@dataclass(frozen=True)
class SpoofNight:
    """One night's spoofed legs and spoofing warnings, lake and outbox against truth."""

    day: dt.date
    truth_legs: int
    lake_legs: int
    matched: int
    false_alarms: list[str]  # lake legs no truth leg matched, as `leg_text`
    missed: list[str]  # truth legs no lake leg matched
    missed_unjudged: int  # of the missed, legs recorded by a carrier the detector left unjudged that night
    unjudged: dict[str, str]  # carrier -> why (lake/_runs/detect/date=D/spoofing.json)
    to_warn: int  # truth receivers to warn that night
    warned: int | None  # receivers with a spoofing row in outbox/D/warnings.csv; None: not scored
    warned_right: int | None


@dataclass
class SpoofingEvaluation:
    """Spoofed legs (lake/spoofed) and spoofing warnings (outbox/D/warnings.csv) against the truth's
    spoofed_legs.csv, over the nights the detector ran for."""

    first: dt.date
    last: dt.date
    nights: list[SpoofNight]
    not_run: list[dt.date] = field(default_factory=list)  # no lake/spoofed, no spoofing.json: not scored
    not_exported: list[dt.date] = field(default_factory=list)  # no warnings.csv with `reason`: warnings not scored

    @property
    def legs(self) -> Score:
        return Score(
            "spoofed legs",
            sum(n.lake_legs for n in self.nights),
            sum(n.matched for n in self.nights),
            sum(n.truth_legs for n in self.nights),
        )

    @property
    def warnings(self) -> Score:
        scored = [n for n in self.nights if n.warned is not None]
        return Score(
            "spoofing warnings",
            sum(n.warned for n in scored),
            sum(n.warned_right for n in scored),
            sum(n.to_warn for n in scored),
        )

    def line(self) -> str:
        from rich.markup import escape

        legs, warned = self.legs, self.warnings
        skipped = "".join(
            f"; {what}: {', '.join(d.isoformat() for d in days)}"
            for what, days in (("detector not run", self.not_run), ("warnings not exported", self.not_exported))
            if days
        )
        return escape(
            f"spoofing {self.first}..{self.last}: leg precision {legs.precision:.2f} ({legs.true_positives}/"
            f"{legs.flagged} lake legs), recall {legs.recall:.2f} ({legs.true_positives}/{legs.relevant} truth legs); "
            f"warning precision {warned.precision:.2f} ({warned.true_positives}/{warned.flagged} warned), "
            f"recall {warned.recall:.2f} ({warned.true_positives}/{warned.relevant} to warn){skipped}"
        )

    def table(self):
        """Per night: legs matched, false alarms and misses (a few of each), receivers warned."""
        from rich.markup import escape
        from rich.table import Table

        table = Table(
            title=f"evaluate {self.first}..{self.last}: spoofed legs (±{SPOOF_SKEW_S:.0f} s) and spoofing "
            "warnings per night"
        )
        for column in (
            "night",
            "truth",
            "lake",
            "matched",
            "false alarms",
            "missed",
            "to warn",
            "warned",
            "right",
            "unjudged",
        ):
            table.add_column(
                column,
                justify="left" if column in ("night", "false alarms", "missed", "unjudged") else "right",
                overflow="fold",
            )
        for n in self.nights:
            missed = f"{len(n.missed)}" + (f" ({n.missed_unjudged} unjudged)" if n.missed_unjudged else "")
            table.add_row(
                *(
                    escape(cell)
                    for cell in (
                        n.day.isoformat(),
                        str(n.truth_legs),
                        str(n.lake_legs),
                        str(n.matched),
                        f"{len(n.false_alarms)} {_some(n.false_alarms, EXAMPLES)}".strip(),
                        f"{missed} {_some(n.missed, EXAMPLES)}".strip(),
                        str(n.to_warn),
                        "–" if n.warned is None else str(n.warned),
                        "–" if n.warned_right is None else str(n.warned_right),
                        "; ".join(f"{c}: {why}" for c, why in sorted(n.unjudged.items())),
                    )
                )
            )
        return table

    def renderables(self) -> list:
        return [self.line(), self.table()]


def leg_text(leg: dict) -> str:
    """`110 → 13800000001 voice 10:02:03`: a leg as an analyst reads it (national numbers, local time)."""
    return f"{national(leg['presented'])} → {national(leg['receiver'])} {leg['service']} {leg['start']:%H:%M:%S}"


def match_legs(
    lake_legs: pl.DataFrame, truth_legs: pl.DataFrame, skew_s: float = SPOOF_SKEW_S
) -> tuple[list[dict], list[dict], list[dict]]:
    """(matched truth legs, lake legs without a truth leg, truth legs without a lake leg), one to one:
    same receiver, presented number and service, starts at most `skew_s` apart. Per key both sides are
    walked in time order and the earlier of an unmatched pair is dropped, which pairs as many as any
    matching can."""

    def by_key(frame: pl.DataFrame) -> dict[tuple, list[dict]]:
        grouped: dict[tuple, list[dict]] = defaultdict(list)
        for row in frame.sort("start").iter_rows(named=True):
            grouped[tuple(row[k] for k in LEG_KEY)].append(row)
        return grouped

    lakes, truths = by_key(lake_legs), by_key(truth_legs)
    matched, false_alarms, missed = [], [], []
    for key in sorted(set(lakes) | set(truths)):
        ours, theirs = lakes.get(key, []), truths.get(key, [])
        i = j = 0
        while i < len(ours) and j < len(theirs):
            gap = (ours[i]["start"] - theirs[j]["start"]).total_seconds()
            if abs(gap) <= skew_s:
                matched.append(theirs[j])
                i, j = i + 1, j + 1
            elif gap < 0:
                false_alarms.append(ours[i])
                i += 1
            else:
                missed.append(theirs[j])
                j += 1
        false_alarms += ours[i:]
        missed += theirs[j:]
    return matched, false_alarms, missed


def truth_to_warn(truth_legs: pl.DataFrame, warning_min_call_s: int) -> set[tuple[str, str]]:
    """(date, receiver) the export should warn: a voice leg answered for `warning_min_call_s`, or
    answered at all when the number shown was protected (export's rule, from the truth's side)."""
    protected = pl.col("protected").str.to_lowercase().is_in(["true", "1", "yes"])
    duration = pl.col("duration_s").cast(pl.Int64)
    return set(
        truth_legs.filter(
            (pl.col("service") == "voice") & ((duration >= warning_min_call_s) | (protected & (duration > 0)))
        )
        .select("date", "receiver")
        .iter_rows()
    )


def read_truth_legs(truth: Path) -> pl.DataFrame | None:
    """truth/spoofed_legs.csv as LEG_SCHEMA plus duration_s and protected (text); None when the
    truth has none (a simulation from before spoofing)."""
    path = Path(truth) / SPOOFED_LEGS
    if not path.is_file():
        return None
    frame = _truth(
        truth, SPOOFED_LEGS, ("date", "receiver", "presented", "protected", "service", "start", "duration_s", "carrier")
    )
    return frame.with_columns(pl.col("start").str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us")).select(
        *LEG_SCHEMA, "duration_s", "protected"
    )


def read_lake_legs(config: Config, day: dt.date) -> pl.DataFrame:
    """lake/spoofed of `day` as LEG_SCHEMA: the instant `start_time` as local wall-clock time of the
    conf timezone, as the truth writes it."""
    return (
        lake_polars.read_day(config, SPOOFED, day, ["receiver", "presented", "service", "start_time", "carrier"])
        .select(
            pl.lit(day.isoformat()).alias("date"),
            "receiver",
            "presented",
            "service",
            pl.col("start_time").dt.convert_time_zone(config.timezone).dt.replace_time_zone(None).alias("start"),
            "carrier",
        )
        .cast(LEG_SCHEMA)
    )


def read_spoofing_run(config: Config, day: dt.date) -> dict | None:
    """lake/_runs/detect/date=D/spoofing.json, None when detect wrote none."""
    return summaries.read_spoofing(config, day)


def read_spoofing_warnings(outbox_day: Path) -> set[str] | None:
    """E.164 receivers of the spoofing rows (`reason` 'spoofed …') of outbox/D/warnings.csv; None when
    the file is missing or has no `reason` column (exported before spoofing warnings)."""
    path = outbox_day / WARNINGS_FILE
    if not path.is_file():
        return None
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if "reason" not in (reader.fieldnames or []):
            return None
        return {e164(row["number"]) or row["number"] for row in reader if (row["reason"] or "").startswith("spoofed")}


def evaluate_spoofing(config: Config, truth: Path, first: dt.date, last: dt.date) -> SpoofingEvaluation | None:
    """Spoofed legs and spoofing warnings of the nights first..last against truth/spoofed_legs.csv
    (see `score_spoofing`); None when the truth has no such file. A night the detector did not run
    for (no lake/spoofed partition, no spoofing.json) is named, not scored; so are a night's warnings
    when outbox/D/warnings.csv is missing or predates the `reason` column."""
    truth_legs = read_truth_legs(truth)
    if truth_legs is None:
        return None
    days = range_nights(first, last)
    runs = {day: read_spoofing_run(config, day) for day in days}
    ran = [day for day in days if runs[day] is not None or lake_polars.has_day(config, SPOOFED, day)]
    lake_legs = pl.concat([read_lake_legs(config, day) for day in ran]) if ran else pl.DataFrame(schema=LEG_SCHEMA)
    outbox = Path(config.paths.outbox)
    warned = {day: read_spoofing_warnings(outbox / day.isoformat()) for day in ran}
    return score_spoofing(
        lake_legs,
        truth_legs,
        warned,
        {day: (runs[day] or {}).get("unjudged_carriers") or {} for day in ran},
        config.export.warning_min_call_s,
        first,
        last,
    )


def score_spoofing(
    lake_legs: pl.DataFrame,
    truth_legs: pl.DataFrame,
    warned: dict[dt.date, set[str] | None],
    unjudged: dict[dt.date, dict[str, str]],
    warning_min_call_s: int,
    first: dt.date,
    last: dt.date,
) -> SpoofingEvaluation:
    """Pure: the nights of `warned` (those the detector ran for; its value None: warnings not exported)
    scored. Legs match one to one (`match_legs`) within the scored nights; a night's warnings are
    its receivers warned for spoofing against the truth's receivers to warn (`truth_to_warn`)."""
    scored = sorted(warned)
    dates = [d.isoformat() for d in scored]
    truth_legs = truth_legs.filter(pl.col("date").is_in(dates))
    lake_legs = lake_legs.filter(pl.col("date").is_in(dates))
    matched, false_alarms, missed = match_legs(lake_legs, truth_legs)
    to_warn = truth_to_warn(truth_legs, warning_min_call_s)

    def on(legs: list[dict], date: str) -> list[dict]:
        return sorted(
            (leg for leg in legs if leg["date"] == date), key=lambda leg: (leg["start"], *(leg[k] for k in LEG_KEY))
        )

    nights = []
    for day, date in zip(scored, dates):
        lost = on(missed, date)
        should = {receiver for d, receiver in to_warn if d == date}
        sent = warned[day]
        nights.append(
            SpoofNight(
                day,
                truth_legs.filter(pl.col("date") == date).height,
                lake_legs.filter(pl.col("date") == date).height,
                len(on(matched, date)),
                [leg_text(leg) for leg in on(false_alarms, date)],
                [leg_text(leg) for leg in lost],
                sum(1 for leg in lost if leg["carrier"] in unjudged.get(day, {})),
                dict(unjudged.get(day, {})),
                len(should),
                None if sent is None else len(sent),
                None if sent is None else len(sent & should),
            )
        )
    days = range_nights(first, last)
    return SpoofingEvaluation(
        first,
        last,
        nights,
        not_run=[d for d in days if d not in warned],
        not_exported=[d for d in scored if warned[d] is None],
    )
