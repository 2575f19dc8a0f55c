"""Caller-ID spoofing end to end (#16): the simulated week's two overseas gateways through the real
CLI (ingest, detect, dens, export), scored against the simulator's truth; and a night with one
carrier's files missing, which must flag nothing for that carrier's numbers."""

import csv
import re
import shutil

import polars as pl
import pytest

from jobs.io import lake_polars, summaries
from jobs.numbers import national
from schemas.tables import FLAG, SPOOFED
from simulator.evaluate import evaluate_spoofing

pytestmark = pytest.mark.slow


def _warnings(week, day):
    path = week.root / "outbox" / day.isoformat() / "warnings.csv"
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def test_spoofed_legs_and_warnings_against_truth(week_exported):
    week = week_exported
    result = evaluate_spoofing(week.config, week.truth, week.dates[0], week.dates[-1])
    legs, warnings = result.legs, result.warnings
    print(result.line())
    assert legs.relevant > 500, "the week's gateways placed hundreds of calls"
    assert legs.precision >= 0.95 and legs.recall >= 0.95
    assert [a for n in result.nights for a in n.false_alarms] == [], "no legitimate call is called spoofed"
    assert warnings.precision >= 0.95 and warnings.recall >= 0.95


def _not_in_the_night(week) -> set[tuple[str, str]]:
    """(receiver, presented) of incoming legs that never reached their night's lake/cdr: the line was
    corrupted (lake/quarantine), or it was delivered in the next date's folder (lake/routed: it joins
    its night when that night is ingested again)."""
    lake = week.root / "lake"
    quarantined = pl.read_parquet(lake / "quarantine" / "**" / "*.parquet")["raw"].drop_nulls().to_list()
    routed = pl.read_parquet(lake / "routed" / "**" / "*.parquet").filter(pl.col("direction") == "in")
    truth = pl.read_csv(week.truth / "spoofed_legs.csv", schema_overrides={"presented": pl.String})

    def written(number: str) -> re.Pattern:  # the number as a whole field, in any of its written forms
        return re.compile(rf"(?<![0-9])(?:0086|86)?{national(number)}(?![0-9])")

    lost = {
        (r, p)
        for r, p in truth.select("receiver", "presented").iter_rows()
        if any(written(r).search(line) and written(p).search(line) for line in quarantined)
    }
    return lost | set(routed.select("msisdn", "other_party").iter_rows())


def test_every_receiver_of_an_answered_protected_spoof_is_warned(week_exported):
    week = week_exported
    truth = pl.read_csv(week.truth / "spoofed_legs.csv", schema_overrides={"presented": pl.String})
    answered = truth.filter(pl.col("protected") & (pl.col("service") == "voice") & (pl.col("duration_s") > 0))
    assert answered.height > 20
    lost = _not_in_the_night(week)
    assert len(lost & set(answered.select("receiver", "presented").iter_rows())) <= 0.05 * answered.height
    for day in week.dates:
        warned = {r["number"]: r for r in _warnings(week, day) if r["reason"].startswith("spoofed ")}
        for receiver, presented in (
            answered.filter(pl.col("date") == day.isoformat()).select("receiver", "presented").iter_rows()
        ):
            row = warned.get(national(receiver))
            assert row is not None or (receiver, presented) in lost, (day, receiver, presented)
            if row is None:
                continue
            assert row["den_id"].startswith(f"S{day:%Y%m%d}-")


def test_impersonated_subscribers_are_in_no_lead_and_named_as_victims(week_exported):
    week = week_exported
    truth = pl.read_csv(week.truth / "spoofed_legs.csv", schema_overrides={"presented": pl.String})
    owners = set(truth.filter(~pl.col("protected"))["presented"])
    assert owners
    for day in week.dates:
        out = week.root / "outbox" / day.isoformat()
        for lead in (out / "leads").glob("*.csv"):
            with lead.open(encoding="utf-8-sig", newline="") as f:
                numbers = {n for row in csv.DictReader(f) for n in row["numbers"].split(";")}
            assert not numbers & {national(o) for o in owners}, (day, lead.name)
        with (out / "analysts" / "spoofing.csv").open(encoding="utf-8-sig", newline="") as f:
            campaigns = list(csv.DictReader(f))
        named = {n for c in campaigns for n in c["impersonated_subscribers"].split(";") if n}
        tonight = {
            national(o) for o in truth.filter(~pl.col("protected") & (pl.col("date") == day.isoformat()))["presented"]
        }
        assert named <= tonight, (day, named - tonight)  # only real owners, never a protected number
        assert len(named) >= 0.9 * len(tonight), day  # a few legs are not judged (quarantine)
        flags = lake_polars.read_day(week.config, FLAG, day, ["detector", "entity_type", "entity_id"])
        spoofing = flags.filter(pl.col("detector") == "spoofing")
        assert set(spoofing["entity_type"]) <= {"presented"}


@pytest.fixture(scope="module")
def carrier_missing(week_ingested, tmp_path_factory):
    """The week's landing with cu's folder of the third night removed, ingested and detected for the
    second and third nights through the CLI."""
    from jobs.cli import main

    week = week_ingested
    root = tmp_path_factory.mktemp("cu_missing")
    days = week.dates[1:3]
    landing = root / "landing"
    for item in (week.root / "landing").iterdir():
        if item.name in ("cm", "cu", "ct"):
            for day in days:
                source = item / day.isoformat()
                if not (item.name == "cu" and day == days[1]):
                    shutil.copytree(source, landing / item.name / day.isoformat())
        elif item.is_dir():
            shutil.copytree(item, landing / item.name)
        else:
            shutil.copy(item, landing / item.name)
    argv = [
        "--landing",
        str(landing),
        "--lake",
        str(root / "lake"),
        "--outbox",
        str(root / "outbox"),
        "--set",
        "spark.master=local[2]",
        "--set",
        "spark.shuffle_partitions=2",
    ]
    for day in days:
        assert main(["ingest", "--date", day.isoformat(), *argv]) == 0
    for day in days:
        assert main(["detect", "--date", day.isoformat(), *argv]) == 0
    from jobs.config import load_config

    config = load_config(overrides=[f"paths.landing={landing}", f"paths.lake={root / 'lake'}"])
    return config, days[1]


def test_a_night_without_one_carrier_flags_none_of_its_numbers(carrier_missing, week):
    config, day = carrier_missing
    run = summaries.read_spoofing(config, day)
    assert "cu" in run["unjudged_carriers"] and run["not_judged"]
    legs = lake_polars.read_day(config, SPOOFED, day, ["presented", "protected", "owner_carrier"])
    assert legs.filter(pl.col("owner_carrier").str.contains("cu")).height == 0
    truth = pl.read_csv(week.truth / "spoofed_legs.csv", schema_overrides={"presented": pl.String})
    tonight = truth.filter((pl.col("date") == day.isoformat()) & (pl.col("carrier") != "cu"))
    # every lake leg is a true spoof: no legitimate call of a cm or ct resident with a cu resident is flagged
    flagged = set(legs["presented"])
    assert flagged <= set(tonight["presented"]), flagged - set(tonight["presented"])
    assert legs.height > 0, "cm's and ct's numbers and the protected ones are still judged"
