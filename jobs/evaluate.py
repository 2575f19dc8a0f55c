"""`cdrwatch evaluate --truth DIR --date D`: the night's flags scored against a labelled scenario;
`--from D1 --to D2`: the dens and leads of those nights, per den kind (`evaluate_range`).

How an analyst tunes thresholds: simulate a city (its `truth/` says which SIMs were dens, which
sites were congested and why, who the couriers, the registered call centre and the crowd were),
run the pipeline, change a threshold with `--set`, and compare the tables. Flags, dens and labels
are small, so this runs on Polars; no Spark session is started.
"""
from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from detectors.sites import distance_m
from jobs.io import lake, lake_polars
from jobs.config import Config
from jobs.errors import CdrwatchError
from schemas.tables import DEN, FLAG, VICTIMS

PHONE_DENS = ("room", "low_slow")   # dens of ordinary handsets, not GOIP/SMS boxes
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
    box_numbers = {n for n, d in zip(den_sims["msisdn"], den_sims["den_id"]) if kind_of.get(d) not in PHONE_DENS}

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


# ---------------------------------------------------------------- a range of nights: dens and leads

LED_SHARE = 0.5      # a lead finds a den when it holds more than this share of the den's SIMs that night
SPLIT_SHARE = 0.2    # a lake den holding at least this share of a den's SIMs is one of the places it was reported at
PURE_SHARE = 0.9     # a lake den is a true one when at least this share of its members are den SIMs that night
RANGE_TABLES = ((DEN, "dens"), (VICTIMS, "dens"), (FLAG, "detect"))   # what the range reads, and the step writing it


@dataclass(frozen=True)
class DenNight:
    """One truth den on one night, as the lake saw it."""
    day: dt.date
    den_id: str
    kind: str
    sims: int
    led_by: str | None            # den_id of the lead holding most of its SIMs (> LED_SHARE), None: not led
    places: int                   # lake dens holding >= SPLIT_SHARE of its SIMs
    error_m: float | None         # distance from the truth position to that lead's


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
    leads_per_den: float | None   # mean `places` over den-nights with at least one: 1.0 = one place, one lead
    id_stability: float | None    # share of led den-nights carrying their den's most common den_id
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
    dens: KindScore               # every kind pooled (kind "all")
    lake_dens: int                # rows of lake/dens over the range
    pure_dens: int                # of them, with >= PURE_SHARE of members den SIMs that night

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
    by_den: dict[str, KindScore]                    # the same scores per truth den (kind = den_id)
    overall: Overall
    den_nights: list[DenNight]
    negatives: dict[str, int]                       # hard-negative kind -> its numbers active in the range
    negatives_in_flags: dict[str, list[str]]        # kind -> sorted numbers flagged on a night they were negatives
    negatives_in_leads: dict[str, list[str]]        # kind -> sorted numbers in a lake den on such a night
    negative_detectors: dict[str, dict[str, list[str]]]  # kind -> flagged number -> its detectors

    def table(self):
        """Per den kind, with the pooled line last; every value escaped."""
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=f"evaluate {self.first}..{self.last}: dens and leads per den kind "
                            "(first, 1st lead: nights of its slowest den)")
        for column in KIND_COLUMNS:
            table.add_column(column, justify="left" if column in ("kind", "first", "1st lead") else "right",
                             no_wrap=True)
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
        shown = [KIND_COLUMNS.index(c) for c in ("nights", "led", "first", "1st lead", "delay", "leads/den",
                                                 "id stab.")]
        for column in ("den", "kind", *(KIND_COLUMNS[i] for i in shown), "lead id"):
            table.add_column(column, justify="left" if column in ("den", "kind", "first", "1st lead", "lead id")
                             else "right", no_wrap=column != "lead id", overflow="fold")
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
            f"leads per den {_ratio(o.leads_per_den)}")

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
            table.add_row(escape(kind), str(total), str(len(flagged)),
                          escape(", ".join(f"{d} {n}" for d, n in sorted(by.items()))),
                          escape(_some(flagged)), str(len(in_leads)), escape(_some(in_leads)))
        return table

    def renderables(self, per_den: bool = False) -> list:
        """What `cdrwatch evaluate --from --to` prints."""
        return [self.table(), *([self.den_table()] if per_den else []), self.overall_line(), self.negatives_table()]


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _some(numbers: list[str], shown: int = 3) -> str:
    return ", ".join(numbers[:shown]) + (" ..." if len(numbers) > shown else "")


KIND_COLUMNS = ("kind", "nights", "led", "recall", "first", "1st lead", "delay", "leads/den", "id stab.",
                "victims warned", "error m")


def _kind_cells(s: KindScore) -> list[str]:
    """A KindScore as KIND_COLUMNS: nights are den-nights in truth, dates month-day, error in metres."""
    def night(day):
        return day.strftime("%m-%d") if day else None

    return [s.kind, str(s.den_nights), str(s.led), _ratio(s.recall), night(s.first_truth_night) or "–",
            night(s.first_lead_night) or "never", "never" if s.first_lead_delay is None else str(s.first_lead_delay),
            _ratio(s.leads_per_den), _ratio(s.id_stability),
            f"{_ratio(s.victims_warned)} ({s.victims_found}/{s.victims})" if s.victims else "–",
            "–" if s.position_error_m is None else f"{s.position_error_m:,.0f}"]


def range_nights(first: dt.date, last: dt.date) -> list[dt.date]:
    if last < first:
        raise CdrwatchError(f"evaluate: --to {last} is before --from {first}")
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def read_nights(config: Config, first: dt.date, last: dt.date) -> dict[str, pl.DataFrame]:
    """lake/dens (den_id, district, lat, lon, numbers: leads only, not the dens the field cleared),
    lake/victims (number) and lake/flags
    (detector, entity_type, entity_id) of every night, each with `date` (YYYY-MM-DD) first; an
    error naming the first missing partition and the command that writes it."""
    days = range_nights(first, last)
    missing = [(table, step, day) for day in days for table, step in RANGE_TABLES
               if not lake_polars.has_day(config, table, day)]
    if missing:
        table, step, day = missing[0]
        nights = len({d for _, _, d in missing})
        more = (f"; {nights} of the {len(days)} nights lack partitions: cdrwatch nightly --from {first} --to {last} "
                "writes them all") if nights > 1 else ""
        raise CdrwatchError(f"{lake.partition_path(config, table, day)}: no {table.name} for {day} "
                            f"(run cdrwatch {step} --date {day} first{more})")
    columns = {DEN: ["den_id", "district", "lat", "lon", "numbers"], VICTIMS: ["number"],
               FLAG: ["detector", "entity_type", "entity_id"]}

    def leads_only(frame: pl.DataFrame) -> pl.DataFrame:   # a den the field cleared (suppressed) is no lead
        return frame.filter(pl.col("suppressed").is_null()) if "suppressed" in frame.columns else frame

    return {table.name: pl.concat([leads_only(lake_polars.read_day(config, table, day, names + (
                                       ["suppressed"] if table is DEN else [])))
                                   .select(pl.lit(day.isoformat()).alias("date"), *names) for day in days])
            for table, names in columns.items()}


def evaluate_range(config: Config, truth: Path, first: dt.date, last: dt.date) -> RangeEvaluation:
    """The nights first..last of the lake scored against the simulator's truth (see `score_range`)."""
    return score_range(read_nights(config, first, last), Path(truth), first, last)


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
        held = sorted(((len(mine & d["members"]), d) for d in lake_dens[row["date"]]),
                      key=lambda hd: (-hd[0], hd[1]["den_id"]))
        leads = [(h, d) for h, d in held if d["lead"] and h > LED_SHARE * len(mine)]
        best = leads[0][1] if leads else None
        error = None
        if best is not None and row["lat"] not in (None, "") and row["lon"] not in (None, ""):
            error = float(distance_m(float(row["lat"]), float(row["lon"]), best["lat"], best["lon"]))
        den_nights.append(DenNight(dt.date.fromisoformat(row["date"]), row["den_id"], row["kind"], len(mine),
                                   best["den_id"] if best else None,
                                   sum(1 for h, _ in held if h and h >= SPLIT_SHARE * len(mine)), error))

    kind_of = dict(zip(truth_dens["den_id"], truth_dens["kind"]))
    warned = {(day, number) for day, number in lake_nights["victims"].select("date", "number").iter_rows()}
    victims: dict[str, list[bool]] = defaultdict(list)     # truth den_id -> found or not, per victim-night
    for day, den_id, number in truth_victims.select("date", "den_id", "number").iter_rows():
        victims[den_id].append((day, number) in warned)

    by_den = {den_id: _pooled(den_id, [n for n in den_nights if n.den_id == den_id], victims[den_id])
              for den_id in sorted({n.den_id for n in den_nights})}
    kinds = sorted({n.kind for n in den_nights})
    by_kind = {kind: _pooled(kind, [n for n in den_nights if n.kind == kind],
                             [v for d, vs in victims.items() if kind_of.get(d) == kind for v in vs],
                             [by_den[d] for d in by_den if kind_of[d] == kind]) for kind in kinds}
    pooled = _pooled("all", den_nights, [v for d, vs in victims.items() if d in kind_of for v in vs],
                     list(by_den.values()))

    truth_sims = defaultdict(set)
    for (day, _), numbers in sims.items():
        truth_sims[day] |= numbers
    everyone = [d for rows in lake_dens.values() for d in rows]
    pure = sum(1 for d in everyone
               if d["members"] and len(d["members"] & truth_sims[d["date"]]) >= PURE_SHARE * len(d["members"]))
    overall = Overall(pooled, len(everyone), pure)
    return RangeEvaluation(first, last, by_kind, by_den, overall, den_nights,
                           **_negatives(negatives, lake_nights["flags"], lake_dens, days))


def _pooled(name: str, nights: list[DenNight], victims_found: list[bool],
            dens: list[KindScore] | None = None) -> KindScore:
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
        slowest = max(dens, key=lambda s: (s.first_lead_delay is None, s.first_lead_delay or 0,
                                           -s.first_truth_night.toordinal()))
        first_truth, first_lead, delay = slowest.first_truth_night, slowest.first_lead_night, slowest.first_lead_delay
    stable = sum(Counter(n.led_by for n in led if n.den_id == den).most_common(1)[0][1]
                 for den in {n.den_id for n in led})
    places = [n.places for n in nights if n.places]
    errors = [n.error_m for n in led if n.error_m is not None]
    return KindScore(name, len(nights), len(led), first_truth, first_lead, delay,
                     sum(places) / len(places) if places else None, stable / len(led) if led else None,
                     len(victims_found), sum(victims_found), statistics.median(errors) if errors else None)


def _negatives(negatives: pl.DataFrame, flags: pl.DataFrame, lake_dens: dict[str, list[dict]],
               days: set[str]) -> dict:
    """Hard negatives per kind that were flagged (with the detectors) or in a lake den, on a
    night they were negatives (an empty date: every night)."""
    active: dict[tuple[str, str], set[str]] = defaultdict(set)     # (night, number) -> its kinds that night
    for number, kind, day in negatives.select("number", "kind", "date").iter_rows():
        for night in (days if day in (None, "") else {day} & days):
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
    return dict(negatives=totals,
                negatives_in_flags={kind: sorted(detectors[kind]) for kind in kinds},
                negatives_in_leads={kind: sorted(in_leads[kind]) for kind in kinds},
                negative_detectors={kind: {n: sorted(ds) for n, ds in sorted(detectors[kind].items())}
                                    for kind in kinds})


def _truth(truth: Path, name: str, required: tuple[str, ...]) -> pl.DataFrame:
    """A truth CSV read by its header, as text; columns added later are optional, these are not."""
    frame = _read(truth, name)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise CdrwatchError(f"{Path(truth) / name}: no column {', '.join(missing)} (is --truth the simulator's truth/ "
                            "folder?)")
    return frame
