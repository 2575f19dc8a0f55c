"""The landing zone on disk: cell inventories, the whitelist and each carrier's daily CDR files
(and, unless told not to, each day folder's `_MANIFEST.csv`).

Lines are built column-wise with polars (numbers in the carrier's habitual written forms, local
times, cell keys), dirtied, encoded in one call and gzipped with mtime=0, so a seed always gives
the same bytes. Each carrier splits its day into a few time windows, one file each, by the times
its own switch clock wrote (`clock`: off by a fixed number of seconds, 0 unless asked for).
"""

from __future__ import annotations

import gzip
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from jobs.io.manifest import Entry, entry_for, write_manifest
from schemas.raw import (
    CN_CSV,
    CN_CSV_SERVICES,
    JSONL_DIRECTIONS,
    JSONL_SERVICES,
    PIPE_GBK_DIRECTIONS,
    PIPE_GBK_SERVICES,
    RAW_LAYOUTS,
)
from simulator.city import CARRIERS, City
from simulator.dirt import Dirtied, dirty, poison

FORMATS = {"cm": "cn_csv", "cu": "pipe_gbk", "ct": "jsonl"}
FILE_HOURS = {"cm": 6, "cu": 8, "ct": 12}  # one file per window of this many hours
GZIP_LEVEL = 3
BOM = "\ufeff"
# how often a mobile number is written bare / 86… / +86… / 0086…, per format (the samples' habits)
MOBILE_FORMS = {
    "cn_csv": (0.92, 0.03, 0.03, 0.02),
    "pipe_gbk": (0.93, 0.0, 0.0, 0.07),
    "jsonl": (0.04, 0.01, 0.95, 0.0),
}
FOREIGN_PLUS = {"cn_csv": 0.5, "pipe_gbk": 0.3, "jsonl": 0.9}  # +855… rather than 00855…
CLOCK_SKEW_SHARES = {"cm": 0.0, "cu": 0.75, "ct": -1.0}  # of --clock-skew S: how far each switch clock is off
_DIRS = ("out", "in")
_SVCS = ("voice", "sms")


@dataclass(frozen=True)
class FileSpec:
    name: str
    start: int  # seconds of day covered: [start, end)
    end: int
    bom: bool = False
    gz: bool = False


@dataclass
class WrittenFile:
    path: str  # relative to the landing root
    rows: int
    corrupt: list[tuple[int, str]]  # (1-based physical line, kind)
    duplicated: int


def clock_offsets(skew: int) -> np.ndarray:
    """Seconds each carrier's switch clock is ahead, by carrier index: cm 0, cu +0.75 S (rounded), ct -S.
    Two legs of one call then disagree by up to 1.75 S, as legs of carriers without a common time source do."""
    return np.array([round(CLOCK_SKEW_SHARES[c] * skew) for c in CARRIERS], dtype=np.int64)


def file_specs(carrier: str, day: date, day_len: int) -> list[FileSpec]:
    """cm: .csv with BOM, .csv.gz, plain .csv, .csv.gz with BOM; cu: .txt; ct: .jsonl.gz."""
    hours = FILE_HOURS[carrier]
    stamp = day.strftime("%Y%m%d")
    specs = []
    for i, start in enumerate(range(0, 24, hours)):
        window = (start * 3600, day_len if start + hours >= 24 else (start + hours) * 3600)
        stem = f"{carrier}_{stamp}_{i + 1}"
        if carrier == "cm":
            variant = i % 4
            specs.append(
                FileSpec(
                    stem + (".csv.gz" if variant % 2 else ".csv"), *window, bom=variant in (0, 3), gz=variant % 2 == 1
                )
            )
        elif carrier == "cu":
            specs.append(FileSpec(stem + ".txt", *window))
        else:
            specs.append(FileSpec(stem + ".jsonl.gz", *window, gz=True))
    return specs


def resend_name(name: str) -> str:
    """The name a re-delivered copy arrives under: `cm_20261120_2.csv.gz` -> `cm_20261120_2_resend.csv.gz`."""
    stem, _, ext = name.partition(".")
    return f"{stem}_resend.{ext}"


def number_expr(column: str, draw: str, fmt: str) -> pl.Expr:
    """A number (int64 E.164 digits) as this carrier tends to write it."""
    n = pl.col(column)
    digits = n.cast(pl.String)
    national = digits.str.slice(2)
    u = pl.col(draw)
    bare, p86, plus86, _ = np.cumsum(MOBILE_FORMS[fmt])
    mobile = (
        pl.when(u < bare)
        .then(national)
        .when(u < p86)
        .then(pl.concat_str([pl.lit("86"), national]))
        .when(u < plus86)
        .then(pl.concat_str([pl.lit("+86"), national]))
        .otherwise(pl.concat_str([pl.lit("0086"), national]))
    )
    landline = (
        pl.when(u < 0.5)
        .then(pl.concat_str([pl.lit("0"), national]))
        .otherwise(pl.concat_str([pl.lit("0"), national.str.slice(0, 2), pl.lit("-"), national.str.slice(2)]))
    )
    foreign = (
        pl.when(u < FOREIGN_PLUS[fmt])
        .then(pl.concat_str([pl.lit("+"), digits]))
        .otherwise(pl.concat_str([pl.lit("00"), digits]))
    )
    return (
        pl.when(n < 1_000_000)
        .then(digits)
        .when((n >= 8_610_000_000_000) & (n < 8_620_000_000_000))
        .then(mobile)
        .when((n >= 860_000_000_000) & (n < 870_000_000_000))
        .then(landline)
        .otherwise(foreign)
    )


def _label(mapping: dict[str, tuple[str, str]] | None, values: dict[str, str] | None, kind: str) -> pl.Expr:
    """A format's code for direction/service, taken from schemas.raw (inverted)."""
    if mapping is not None:  # cn_csv: one label for (direction, service)
        label = {v: k for k, v in mapping.items()}
        expr = pl.when(pl.col("dir") == 0)
        out = [label[("out", s)] for s in _SVCS]
        inc = [label[("in", s)] for s in _SVCS]
        return expr.then(pl.when(pl.col("svc") == 0).then(pl.lit(out[0])).otherwise(pl.lit(out[1]))).otherwise(
            pl.when(pl.col("svc") == 0).then(pl.lit(inc[0])).otherwise(pl.lit(inc[1]))
        )
    code = {v: k for k, v in values.items()}
    names = _DIRS if kind == "dir" else _SVCS
    return pl.when(pl.col(kind) == 0).then(pl.lit(code[names[0]])).otherwise(pl.lit(code[names[1]]))


def format_lines(
    records: pl.DataFrame,
    carrier: str,
    day: date,
    day_start: int,
    timezone: str,
    city: City,
    rng: np.random.Generator,
    clock: int = 0,
) -> pl.DataFrame:
    """One carrier's day as text lines, sorted by start time; columns `sod` (as written) and `line`.
    `clock`: how many seconds this carrier's switch clock is ahead (negative: behind); every time it
    writes is off by that much, so `sod` may fall before 0 or after the day's end."""
    fmt = FORMATS[carrier]
    records = records.sort(["sod", "msisdn", "dir", "peer", "dur", "cell"], maintain_order=True)
    n = records.height
    # record ids count through each subscriber's day, as in the samples (not in file order)
    order = records.select(pl.arg_sort_by(["msisdn", "sod", "dir", "peer"], maintain_order=True)).to_series()
    seq = np.empty(n, dtype=np.int64)
    seq[order.to_numpy()] = np.arange(1, n + 1)
    cells = records["cell"].to_numpy()
    records = records.with_columns(pl.col("sod") + clock)  # one shift for all: the order stays
    frame = records.with_columns(
        pl.Series("seq", seq),
        pl.Series("u_msisdn", rng.random(n, dtype=np.float32)),
        pl.Series("u_peer", rng.random(n, dtype=np.float32)),
        city.cell_id.gather(cells).alias("cell_id"),
    )
    instant = pl.from_epoch(pl.col("sod").cast(pl.Int64) + day_start, "s").dt.replace_time_zone("UTC")
    local = instant.dt.convert_time_zone(timezone)
    record_id = pl.concat_str([pl.lit(f"{carrier.upper()}{day:%Y%m%d}"), pl.col("seq").cast(pl.String).str.zfill(8)])
    msisdn, peer = number_expr("msisdn", "u_msisdn", fmt), number_expr("peer", "u_peer", fmt)
    imsi, imei = pl.col("imsi").cast(pl.String), pl.col("imei").cast(pl.String)
    dur = pl.col("dur")
    if fmt == "cn_csv":
        line = pl.concat_str(
            [
                record_id,
                msisdn,
                peer,
                _label(CN_CSV_SERVICES, None, ""),
                local.dt.strftime("%Y-%m-%d %H:%M:%S"),
                dur.cast(pl.String),
                imsi,
                imei,
                pl.col("cell_id").str.replace("-", ",", literal=True),
            ],
            separator=",",
        )
    elif fmt == "pipe_gbk":
        site_name = pl.Series(city.inventories["cu"]["site_name"])
        base = int(city.cell_base[CARRIERS.index("cu")])
        frame = frame.with_columns(site_name.gather(cells - base).alias("site_name"))
        hhmmss = pl.concat_str(
            [
                (dur // 3600).cast(pl.String).str.zfill(2),
                (dur % 3600 // 60).cast(pl.String).str.zfill(2),
                (dur % 60).cast(pl.String).str.zfill(2),
            ]
        )
        line = pl.concat_str(
            [
                record_id,
                msisdn,
                imsi,
                imei,
                peer,
                _label(None, PIPE_GBK_DIRECTIONS, "dir"),
                _label(None, PIPE_GBK_SERVICES, "svc"),
                local.dt.strftime("%Y%m%d%H%M%S"),
                hhmmss,
                pl.col("cell_id"),
                pl.col("site_name"),
            ],
            separator="|",
        )
    else:
        ts = ((pl.col("sod").cast(pl.Int64) + day_start) * 1000).cast(pl.String)
        line = pl.concat_str(
            [
                pl.lit('{"id": "'),
                record_id,
                pl.lit('", "subscriber": "'),
                msisdn,
                pl.lit('", "peer": "'),
                peer,
                pl.lit('", "dir": "'),
                _label(None, JSONL_DIRECTIONS, "dir"),
                pl.lit('", "svc": "'),
                _label(None, JSONL_SERVICES, "svc"),
                pl.lit('", "ts": '),
                ts,
                pl.lit(', "dur": '),
                dur.cast(pl.String),
                pl.lit(', "imsi": "'),
                imsi,
                pl.lit('", "imei": "'),
                imei,
                pl.lit('", "cell": "'),
                pl.col("cell_id"),
                pl.lit('"}'),
            ]
        )
    return frame.select("sod", line.alias("line"))


class DayWriter:
    """Writes one carrier-day's files; encoding, gzip and disk writes run on a small thread pool.
    With `manifests`, the folder's `_MANIFEST.csv` follows its files, as a carrier that marks its
    delivery complete writes it: last."""

    def __init__(self, out: Path, workers: int = 2, manifests: bool = True):
        self.out = out
        self.manifests = manifests
        self.pool = ThreadPoolExecutor(max_workers=workers)

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def write(
        self, carrier: str, day: date, day_len: int, lines: pl.DataFrame, rng: np.random.Generator, resend: bool
    ) -> list[WrittenFile]:
        fmt = FORMATS[carrier]
        folder = self.out / carrier / day.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        # a skewed switch stamps a few records of the day's edges on the day before or after: they
        # still go in this day's first or last file (ingest files them under the date they carry)
        sod = np.clip(lines["sod"].to_numpy(), 0, day_len - 1)
        specs = file_specs(carrier, day, day_len)
        copy_of = int(rng.integers(len(specs))) if resend else -1
        header = 1 if fmt == "cn_csv" else 0
        jobs, written = [], []
        for i, spec in enumerate(specs):
            lo, hi = np.searchsorted(sod, [spec.start, spec.end])
            dirtied = dirty(lines["line"].slice(int(lo), int(hi - lo)), fmt, rng)
            corrupt = [(index + 1 + header, kind) for index, kind in dirtied.corrupt]
            rel = f"{carrier}/{day.isoformat()}/{spec.name}"
            names = [(rel, spec.name)]
            written.append(WrittenFile(rel, dirtied.lines.len(), corrupt, dirtied.duplicated))
            if i == copy_of:  # the same file delivered twice under another name
                copy = resend_name(spec.name)
                names.append((f"{carrier}/{day.isoformat()}/{copy}", copy))
                written.append(
                    WrittenFile(names[-1][0], dirtied.lines.len(), corrupt, dirtied.lines.len() - len(corrupt))
                )
            jobs.append(
                self.pool.submit(
                    self._encode_and_write, folder, [n for _, n in names], dirtied, fmt, spec, self.manifests
                )
            )
        entries = [entry for job in jobs for entry in job.result()]
        if self.manifests:
            write_manifest(folder, entries)
        return written

    @staticmethod
    def _encode_and_write(
        folder: Path, names: list[str], dirtied: Dirtied, fmt: str, spec: FileSpec, manifest: bool
    ) -> list[Entry]:
        """Write the file (and its re-sent copies); their manifest lines, measured on disk, if wanted."""
        eol = "\n" if fmt == "jsonl" else "\r\n"
        text = dirtied.lines.str.join(eol).item() + eol if dirtied.lines.len() else ""
        if fmt == "cn_csv":
            text = ",".join(CN_CSV.fields) + eol + text
        if spec.bom:
            text = BOM + text
        data = poison(text.encode("gbk" if fmt == "pipe_gbk" else "utf-8"))
        if spec.gz:
            data = gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
        for name in names:
            (folder / name).write_bytes(data)
        if not manifest:
            return []
        entry = entry_for(folder / names[0], has_header=RAW_LAYOUTS[fmt].header)
        return [replace(entry, file=name) for name in names]  # the copies are the same bytes


def write_inventories(out: Path, city: City) -> None:
    """cells/<carrier>.csv, UTF-8 with header, CRLF as in the sample."""
    folder = out / "cells"
    folder.mkdir(parents=True, exist_ok=True)
    for carrier, frame in city.inventories.items():
        frame.write_csv(folder / f"{carrier}.csv", line_terminator="\r\n", float_precision=6)


def write_whitelist(out: Path, rows: list[tuple[str, str]]) -> None:
    pl.DataFrame(rows, schema=["number", "owner"], orient="row").write_csv(
        out / "whitelist.csv", line_terminator="\r\n"
    )
