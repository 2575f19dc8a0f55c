"""Builders shared by the tests: small hand-built CDR rows, nights and configs (chispa style).

Imported as `from builders import ...` (pytest puts tests/ on sys.path, as for `from test_simulate
import Reader`). Only what several test files built the same way lives here; a test's own scene
(who calls whom, when) stays in its file."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from pyspark.sql.types import DoubleType, StringType, StructField

from detectors.base import Night
from jobs.config import load_config
from schemas.tables import CDR

LOCAL = ZoneInfo("Asia/Shanghai")  # the session timezone (conf `timezone`): hand-built times are local

# --- CDR rows and nights --------------------------------------------------------------------------

SITE_FIELDS = [
    StructField(name, kind)
    for name, kind in (  # the columns `prepare_night` adds to the lake's CDR
        ("site_key", StringType()),
        ("site_lat", DoubleType()),
        ("site_lon", DoubleType()),
        ("site_label", StringType()),
        ("district", StringType()),
    )
]
SITE_COLUMNS = ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in SITE_FIELDS)
# CDR's columns plus the site's as a DDL string: every column nullable, unlike CDR.spark()
CDR_SITE_COLUMNS = ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in CDR.spark().fields) + f", {SITE_COLUMNS}"


def cdr_row(
    rid, carrier, msisdn, other, direction, service, when, duration, imsi=None, imei=None, cell_id=None, *, line=1
):
    """One lake/cdr row (CDR's columns in order) from file "test", dated by `when`'s own date."""
    return (
        rid,
        carrier,
        msisdn,
        other,
        direction,
        service,
        when,
        duration,
        imsi,
        imei,
        cell_id,
        "test",
        line,
        when.date(),
    )


class SiteCdr:
    """Collects cm CDR rows on cell 4100-1 with their site columns, as `prepare_night` leaves them.

    `sites` maps a site name to its 5 site columns; `imei(msisdn)` gives a SIM's device when a row
    names none; the IMSI defaults to 46000 + the number's last 10 digits."""

    def __init__(self, sites, site, imei=lambda msisdn: None):
        self.sites, self.site, self.imei, self.rows = sites, site, imei, []

    def add(self, msisdn, other, direction, when, *, seconds=0, service="voice", imsi=None, imei=None, site=None):
        n = len(self.rows)
        self.rows.append(
            (
                *cdr_row(
                    f"R{n:06d}",
                    "cm",
                    msisdn,
                    other,
                    direction,
                    service,
                    when,
                    seconds,
                    imsi or f"46000{msisdn[-10:]}",
                    imei or self.imei(msisdn),
                    "4100-1",
                    line=n + 1,
                ),
                *self.sites[site or self.site],
            )
        )

    def frame(self, spark):
        return spark.createDataFrame(self.rows, CDR_SITE_COLUMNS)


def make_night(spark, day, cdr, history=None, whitelist=None, **context):
    """A Night of hand-built frames: no history (an empty `cdr`) and an empty whitelist unless given."""
    if history is None:
        history = cdr.limit(0)
    if whitelist is None:
        whitelist = spark.createDataFrame([], "number string")
    return Night(day, cdr, history, whitelist, **context)


# --- landing lines and configs --------------------------------------------------------------------

CN_HEADER = "话单标识,本机号码,对端号码,业务类型,开始时间,时长,IMSI,IMEI,LAC,CI"


def cn(
    rid,
    msisdn="13912345678",
    when="2026-11-20 08:00:00",
    kind="主叫",
    seconds="30",
    imsi="460006890644432",
    imei="868912038201668",
    peer="028-85551234",
):
    """One cm (cn_csv) delivery line under CN_HEADER."""
    return f"{rid},{msisdn},{peer},{kind},{when},{seconds},{imsi},{imei},4101,20096"


def pipe(
    rid,
    msisdn="13010731369",
    start="20261120120017",
    duration="000153",
    imsi="460012883288459",
    imei="354204099837445",
    site="锦江区1号",
    service="V",
    direction="0",
):
    """One cu (pipe_gbk) delivery line."""
    return f"{rid}|{msisdn}|{imsi}|{imei}|15877668272|{direction}|{service}|{start}|{duration}|460-01-1|{site}"


def config_for(root: Path, *, outbox=False, **overrides):
    """The default conf with its landing zone and lake (and outbox if asked) under `root`; `overrides`
    as dotted keys, e.g. `**{"ingest.rows_per_file": 2}`."""
    sets = [f"paths.landing={root / 'landing'}", f"paths.lake={root / 'lake'}"]
    if outbox:
        sets.append(f"paths.outbox={root / 'outbox'}")
    return load_config(overrides=sets + [f"{k}={v}" for k, v in overrides.items()])
