"""The DuckDB reference for `make bench`: cdrwatch's ingest + the detectors' daily aggregates, written
the way an analyst would on one box, so bench/run.py can print cdrwatch's time next to it (issue 14).

Dev-only (setup.py DEV, `duckdb`); nothing in jobs/ or detectors/ imports it. One process, one DuckDB
connection, day by day over landing/<carrier>/<D>/ (formats from conf `carriers:`):

1. read: `cn_csv` and the GBK file(s) with read_csv (quotes off, `ignore_errors` + `store_rejects`,
   so broken lines are counted, not lost), `jsonl` as text lines parsed with DuckDB's JSON functions;
2. normalise to the lake's CDR columns (E.164 numbers, out/in, voice/sms, start_time a TIMESTAMPTZ
   read in conf `timezone`, duration_s int); a row that fails is dropped and counted;
3. keep events of the delivery date; dedup on (carrier, record_id), first by source file;
4. write `<out>/cdr/date=D/carrier=C/*.parquet`;
5. write the daily aggregates as Parquet under `<out>/<name>/date=D/`: `sim_day`, `imei_day`,
   `site_hour`, `seq_day` (ordered outgoing mobile callees; steps of +1..+10 over LAG).

GBK: DuckDB reads only UTF-8/UTF-16/Latin-1 natively; GBK needs its `encodings` extension, which
`INSTALL` downloads from DuckDB's extension site (unreachable here). So each GBK file is decoded by
Python's codec (`errors="replace"`), streamed into a temporary UTF-8 file that read_csv then reads;
that time is inside `seconds` (and reported alone as `gbk_decode_seconds`). Undecodable bytes
become U+FFFD and such rows are dropped, as cdrwatch quarantines them.

Left out compared with cdrwatch, so read the ratio as "the same core work", not "the same job":
no quarantine table (rejected rows are only counted: `reader_rejects`, `unparsed`), no per-reason
accounting and no reconciliation of counts against an independent line count or `_MANIFEST.csv`;
no Great Expectations suite; no shape checks on record_id/IMSI/IMEI/other party, duration range,
SMS-with-duration, control characters or header mismatch; no damaged-gzip rescue; events of
another date are dropped (`other_date`) instead of routed to their own date; duplicates are not
told apart from conflicting duplicates, and "first" is by file name only (read_csv has no line
number); no atomic/staged partition replace, run summaries, cells/whitelist joins or detectors.

Prints one JSON line: `rows` (data lines read, headers not counted: the simulator's counts.csv
`rows`), `accepted`, where the rest went, `seconds` (wall time from conf load to the last write;
the ~0.5 s of imports is only in the caller's wall time), `peak_rss_mb` (this process: DuckDB runs
in it) and `per_day` (the same per delivery date).
"""

from __future__ import annotations

import argparse
import codecs
import json
import resource
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobs.config import load_config  # noqa: E402  (after the repo root is on sys.path)
from schemas.raw import RAW_LAYOUTS  # noqa: E402

TABLES = ("cdr", "sim_day", "imei_day", "site_hour", "seq_day")
MOBILE = r"\+861[3-9][0-9]{9}"
SEQ_MAX_STEP = 10  # a "sequential step": the callee is the previous callee +1..+10
# read_csv options shared by every format: no quoting (carriers do not quote; one stray '"' must
# not swallow the lines after it), broken lines counted in the rejects tables instead of failing.
READ = "quote='', escape='', ignore_errors=true, store_rejects=true, rejects_table='rej', rejects_scan='rej_scan'"

MACROS = r"""
CREATE OR REPLACE MACRO blank_null(s) AS nullif(trim(s), '');
CREATE OR REPLACE MACRO e164(s) AS CASE
    WHEN trim(s) = '' THEN NULL
    WHEN regexp_full_match(trim(s), '(\+86|0086|86)?1[3-9][0-9]{9}') THEN '+86' || right(trim(s), 11)
    WHEN regexp_full_match(trim(s), '0[1-9][0-9]{1,2}-?[0-9]{7,8}') THEN '+86' || replace(substr(trim(s), 2), '-', '')
    WHEN regexp_full_match(trim(s), '00[1-9][0-9]{4,14}') THEN '+' || substr(trim(s), 3)
    ELSE trim(s) END;
CREATE OR REPLACE MACRO secs(s) AS
    CASE WHEN regexp_full_match(trim(s), '[0-9]{1,9}') THEN trim(s)::INTEGER END;
CREATE OR REPLACE MACRO hhmmss(s) AS
    CASE WHEN regexp_full_match(trim(s), '[0-9]{2}[0-5][0-9][0-5][0-9]')
         THEN substr(trim(s), 1, 2)::INTEGER * 3600 + substr(trim(s), 3, 2)::INTEGER * 60
              + substr(trim(s), 5, 2)::INTEGER END;
CREATE OR REPLACE MACRO local_ts(s, fmt) AS try_strptime(trim(s), fmt)::TIMESTAMPTZ;
"""

# Each format's read + normalisation to the same columns; {files} is a SQL list of paths.
SELECTS = {
    "cn_csv": """
        SELECT filename AS source_file, blank_null(id) AS record_id, e164(me) AS msisdn, e164(peer) AS other_party,
               CASE trim(kind) WHEN '主叫' THEN 'out' WHEN '被叫' THEN 'in' WHEN '短信发' THEN 'out'
                               WHEN '短信收' THEN 'in' END AS direction,
               CASE trim(kind) WHEN '主叫' THEN 'voice' WHEN '被叫' THEN 'voice' WHEN '短信发' THEN 'sms'
                               WHEN '短信收' THEN 'sms' END AS service,
               local_ts(start, '%Y-%m-%d %H:%M:%S') AS start_time, secs(dur) AS duration_s,
               blank_null(imsi) AS imsi, blank_null(imei) AS imei,
               CASE WHEN blank_null(lac) IS NOT NULL AND blank_null(ci) IS NOT NULL
                    THEN trim(lac) || '-' || trim(ci) END AS cell_id,
               false AS broken
        FROM read_csv({files}, header=true, delim=',', filename=true, {read},
                      columns={{'id':'VARCHAR','me':'VARCHAR','peer':'VARCHAR','kind':'VARCHAR','start':'VARCHAR',
                                'dur':'VARCHAR','imsi':'VARCHAR','imei':'VARCHAR','lac':'VARCHAR','ci':'VARCHAR'}})""",
    "pipe_gbk": """
        SELECT filename AS source_file, blank_null(id) AS record_id, e164(me) AS msisdn, e164(peer) AS other_party,
               CASE trim(dir) WHEN '0' THEN 'out' WHEN '1' THEN 'in' END AS direction,
               CASE trim(svc) WHEN 'V' THEN 'voice' WHEN 'S' THEN 'sms' END AS service,
               local_ts(start, '%Y%m%d%H%M%S') AS start_time, hhmmss(dur) AS duration_s,
               blank_null(imsi) AS imsi, blank_null(imei) AS imei, blank_null(cell) AS cell_id,
               contains(concat_ws('|', id, me, imsi, imei, peer, dir, svc, start, dur, cell, site), '\ufffd')
                   AS broken
        FROM read_csv({files}, header=false, delim='|', filename=true, {read},
                      columns={{'id':'VARCHAR','me':'VARCHAR','imsi':'VARCHAR','imei':'VARCHAR','peer':'VARCHAR',
                                'dir':'VARCHAR','svc':'VARCHAR','start':'VARCHAR','dur':'VARCHAR','cell':'VARCHAR',
                                'site':'VARCHAR'}})""",
    # One VARCHAR column per line (U+001F never occurs), so a broken object is a row we can count.
    "jsonl": """
        SELECT filename AS source_file, blank_null(f[1]) AS record_id, e164(f[2]) AS msisdn, e164(f[3]) AS other_party,
               CASE f[4] WHEN 'out' THEN 'out' WHEN 'in' THEN 'in' END AS direction,
               CASE f[5] WHEN 'voice' THEN 'voice' WHEN 'sms' THEN 'sms' END AS service,
               CASE WHEN regexp_full_match(f[6], '-?[0-9]{{1,15}}') THEN to_timestamp(f[6]::BIGINT / 1000) END
                   AS start_time,
               secs(f[7]) AS duration_s, blank_null(f[8]) AS imsi, blank_null(f[9]) AS imei,
               blank_null(f[10]) AS cell_id,
               list_count(f) < 10 AS broken   -- every key of the contract must be there
        FROM (SELECT filename,
                     CASE WHEN json_valid(line) AND NOT regexp_matches(line, ',\\s*}}\\s*$')
                          THEN json_extract_string(line, ['$.id','$.subscriber','$.peer','$.dir','$.svc','$.ts',
                                                          '$.dur','$.imsi','$.imei','$.cell'])
                          ELSE ['', NULL] END AS f
              FROM read_csv({files}, header=false, delim=chr(31), filename=true, {read},
                            columns={{'line':'VARCHAR'}}))""",
}

GOOD = f"""record_id IS NOT NULL AND regexp_full_match(msisdn, '{MOBILE}') AND direction IS NOT NULL
    AND service IS NOT NULL AND start_time IS NOT NULL AND duration_s IS NOT NULL AND NOT broken"""

AGGREGATES = {
    "sim_day": """
        SELECT msisdn, date,
               count(*) FILTER (direction = 'out' AND service = 'voice') AS calls_out,
               count(*) FILTER (direction = 'in' AND service = 'voice') AS calls_in,
               count(*) FILTER (direction = 'out' AND service = 'sms') AS sms_out,
               count(*) FILTER (direction = 'in' AND service = 'sms') AS sms_in,
               count(DISTINCT other_party) FILTER (direction = 'out') AS callees,
               count(DISTINCT cell_id) AS cells, count(DISTINCT imei) AS imeis,
               sum(duration_s)::BIGINT AS duration_s, min(start_time) AS first_seen, max(start_time) AS last_seen
        FROM cdr_day GROUP BY msisdn, date""",
    "imei_day": """
        SELECT imei, date, count(DISTINCT imsi) AS imsis, count(DISTINCT msisdn) AS msisdns,
               count(*) FILTER (service = 'voice') AS calls, count(*) FILTER (direction = 'out') AS out_events
        FROM cdr_day WHERE imei IS NOT NULL GROUP BY imei, date""",
    "site_hour": """
        SELECT carrier, cell_id, date, hour(start_time) AS hour,
               count(*) FILTER (direction = 'out' AND service = 'voice') AS out_calls,
               count(DISTINCT msisdn) AS sims
        FROM cdr_day WHERE cell_id IS NOT NULL GROUP BY ALL""",
    "seq_day": f"""
        WITH outgoing AS (
            SELECT msisdn, date, start_time, record_id, other_party,
                   other_party[2:]::BIGINT - lag(other_party[2:]::BIGINT)
                       OVER (PARTITION BY msisdn, date ORDER BY start_time, record_id) AS step
            FROM cdr_day WHERE direction = 'out' AND regexp_full_match(other_party, '\\+861[0-9]{{10}}'))
        SELECT msisdn, date, list(other_party ORDER BY start_time, record_id) AS callees,
               count(*) AS out_to_mobiles, count(*) FILTER (step BETWEEN 1 AND {SEQ_MAX_STEP}) AS seq_steps
        FROM outgoing GROUP BY msisdn, date""",
}


def sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def day_files(folder: Path, globs: tuple[str, ...]) -> list[Path]:
    """The delivery's CDR files (not `_MANIFEST.csv` or other `_`/`.` files)."""
    return sorted({p for g in globs for p in folder.glob(g) if p.is_file() and p.name[0] not in "_."})


def gbk_to_utf8(files: list[Path], tmp: Path) -> list[Path]:
    """Each GBK file decoded by Python's codec, streamed into a UTF-8 copy under `tmp`."""
    out = []
    for path in files:
        target = tmp / (path.parent.parent.name + "_" + path.parent.name + "_" + path.name)
        with open(path, "rb") as src, open(target, "w", encoding="utf-8", newline="") as dst:
            shutil.copyfileobj(codecs.getreader("gbk")(src, errors="replace"), dst, 1 << 22)
        out.append(target)
    return out


def read_carrier(con: duckdb.DuckDBPyConnection, carrier: str, fmt: str, files: list[Path]) -> tuple[int, int]:
    """Append the carrier's parsed rows to `parsed`; (rows the reader returned, lines it rejected)."""
    before = con.execute("SELECT count(*) FROM parsed").fetchone()[0]
    con.execute(
        f"INSERT INTO parsed SELECT '{carrier}' AS carrier, * FROM ("
        + SELECTS[fmt].format(files=sql_list(files), read=READ)
        + ")"
    )
    returned = con.execute("SELECT count(*) FROM parsed").fetchone()[0] - before
    rejected = con.execute("SELECT count(DISTINCT (file_id, line)) FROM rej").fetchone()[0]
    con.execute("DROP TABLE IF EXISTS rej; DROP TABLE IF EXISTS rej_scan")
    return returned, rejected


def run_day(
    con: duckdb.DuckDBPyConnection, landing: Path, out: Path, day: date, carriers: dict[str, str], tmp: Path
) -> dict:
    started = time.perf_counter()
    stats = {
        "rows": 0,
        "reader_rejects": 0,
        "unparsed": 0,
        "other_date": 0,
        "duplicates": 0,
        "accepted": 0,
        "gbk_decode_seconds": 0.0,
    }
    con.execute(
        "CREATE OR REPLACE TEMP TABLE parsed (carrier VARCHAR, source_file VARCHAR, record_id VARCHAR, "
        "msisdn VARCHAR, other_party VARCHAR, direction VARCHAR, service VARCHAR, start_time TIMESTAMPTZ, "
        "duration_s INTEGER, imsi VARCHAR, imei VARCHAR, cell_id VARCHAR, broken BOOLEAN)"
    )
    for carrier, fmt in carriers.items():
        files = day_files(landing / carrier / day.isoformat(), RAW_LAYOUTS[fmt].file_globs)
        if not files:
            continue
        if RAW_LAYOUTS[fmt].encoding == "gbk":
            t = time.perf_counter()
            files = gbk_to_utf8(files, tmp)
            stats["gbk_decode_seconds"] += time.perf_counter() - t
        returned, rejected = read_carrier(con, carrier, fmt, files)
        stats["rows"] += returned + rejected
        stats["reader_rejects"] += rejected
    con.execute(f"""CREATE OR REPLACE TEMP TABLE good AS
        SELECT * EXCLUDE (broken), start_time::DATE AS date FROM parsed WHERE {GOOD}""")
    good, same_day = con.execute(f"SELECT count(*), count(*) FILTER (date = DATE '{day}') FROM good").fetchone()
    con.execute(f"""CREATE OR REPLACE TEMP TABLE cdr_day AS
        SELECT record_id, carrier, msisdn, other_party, direction, service, start_time, duration_s,
               imsi, imei, cell_id, source_file, date
        FROM good WHERE date = DATE '{day}'
        QUALIFY row_number() OVER (PARTITION BY carrier, record_id ORDER BY source_file) = 1""")
    accepted = con.execute("SELECT count(*) FROM cdr_day").fetchone()[0]
    parsed = stats["rows"] - stats["reader_rejects"]
    stats.update(unparsed=parsed - good, other_date=good - same_day, duplicates=same_day - accepted, accepted=accepted)

    for table in TABLES:  # a rerun of a date replaces that date's output
        target = out / table / f"date={day}"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        if table == "cdr":
            con.execute(
                f"COPY (SELECT * EXCLUDE (date) FROM cdr_day) TO '{target}' "
                "(FORMAT parquet, COMPRESSION snappy, PARTITION_BY (carrier), OVERWRITE_OR_IGNORE)"
            )
        else:
            con.execute(
                f"COPY (SELECT * EXCLUDE (date) FROM ({AGGREGATES[table]})) "
                f"TO '{target / 'part-0.parquet'}' (FORMAT parquet, COMPRESSION snappy)"
            )
    con.execute("DROP TABLE parsed; DROP TABLE good; DROP TABLE cdr_day")
    stats["gbk_decode_seconds"] = round(stats["gbk_decode_seconds"], 3)
    stats["seconds"] = round(time.perf_counter() - started, 3)
    return stats


def connect(threads: int, memory_limit: str, timezone: str, spill: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(
        config={
            "threads": threads,
            "memory_limit": memory_limit,
            "temp_directory": str(spill),
            "preserve_insertion_order": False,
        }
    )
    con.execute(f"SET TimeZone = '{timezone}'")  # after connect: the setting needs ICU, loaded on first use
    con.execute(MACROS)
    return con


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--landing", type=Path, required=True)
    p.add_argument("--from", dest="first", type=date.fromisoformat, required=True)
    p.add_argument("--to", dest="last", type=date.fromisoformat, required=True)
    p.add_argument("--out", type=Path, required=True, help="its cdr/ and aggregate folders are replaced per date")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--memory-limit", default="6GB", help="DuckDB memory_limit (default 6GB)")
    p.add_argument("--conf", type=Path, help="cdrwatch conf file (carriers, timezone); default conf/default.yaml")
    args = p.parse_args(argv)

    started = time.perf_counter()
    config = load_config(args.conf)
    carriers = {code: c.format for code, c in config.carriers.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    per_day = {}
    with tempfile.TemporaryDirectory(prefix=".duckdb_ref_", dir=args.out) as tmp:
        con = connect(args.threads, args.memory_limit, config.timezone, Path(tmp) / "spill")
        day = args.first
        while day <= args.last:
            per_day[day.isoformat()] = run_day(con, args.landing, args.out, day, carriers, Path(tmp))
            day += timedelta(days=1)
        con.close()
    seconds = time.perf_counter() - started
    total = {
        k: sum(d[k] for d in per_day.values())
        for k in ("rows", "accepted", "reader_rejects", "unparsed", "other_date", "duplicates")
    }
    print(
        json.dumps(
            {
                **total,
                "seconds": round(seconds, 3),
                "rows_per_s": round(total["rows"] / seconds) if seconds else 0,
                "gbk_decode_seconds": round(sum(d["gbk_decode_seconds"] for d in per_day.values()), 3),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "duckdb": duckdb.__version__,
                "threads": args.threads,
                "memory_limit": args.memory_limit,
                "per_day": per_day,
            }
        )
    )


if __name__ == "__main__":
    main()
