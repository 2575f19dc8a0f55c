"""The field loop end to end through the real CLI, on the simulator's city: night 1's leads go out,
the field answers (a box raided, a lawful SMS gateway marked legitimate), the nightly run imports the
answers, the raided box comes back with fresh SIMs on night 3 and is a high-priority lead that says
so, and the gateway never becomes a lead again."""

import csv
import datetime as dt

import polars as pl
import pytest

from jobs.cli import main
from jobs.export import LEAD_FILE_COLUMNS

START = dt.date(2026, 11, 20)
NIGHTS = [START + dt.timedelta(days=i) for i in range(3)]


def _leads(outbox, day):
    rows = []
    for path in sorted((outbox / day.isoformat() / "leads").glob("*.csv")):
        table = list(csv.reader(path.read_bytes().decode("utf-8-sig").splitlines()))
        assert tuple(table[0]) == LEAD_FILE_COLUMNS, path
        rows += [dict(zip(table[0], r)) for r in table[1:]]
    return rows


@pytest.fixture(scope="module")
def loop(tmp_path_factory, spark):
    root = tmp_path_factory.mktemp("field")
    landing, lake, outbox = root / "landing", root / "lake", root / "outbox"
    argv = [
        "--landing",
        str(landing),
        "--lake",
        str(lake),
        "--outbox",
        str(outbox),
        "--set",
        "spark.master=local[2]",
        "--set",
        "spark.shuffle_partitions=2",
    ]
    assert (
        main(
            [
                "simulate",
                "--out",
                str(landing),
                "--start",
                START.isoformat(),
                "--days",
                "3",
                "--subscribers",
                "600",
                "--dens",
                "1",
                "--seed",
                "5",
                "--raid-after",
                "1",
                "--lawful-gateways",
                "1",
            ]
        )
        == 0
    )
    assert main(["nightly", "--date", NIGHTS[0].isoformat(), *argv]) == 0
    assert main(["simulate", "--feedback", "--date", NIGHTS[0].isoformat(), *argv]) == 0
    assert main(["nightly", "--from", NIGHTS[1].isoformat(), "--to", NIGHTS[2].isoformat(), *argv]) == 0
    truth = landing / "truth"
    return dict(
        root=root,
        landing=landing,
        lake=lake,
        outbox=outbox,
        argv=argv,
        raids=pl.read_csv(truth / "raids.csv", infer_schema=False),
        den_sims=pl.read_csv(truth / "den_sims.csv", infer_schema=False),
        gateway=set(
            pl.read_csv(truth / "hard_negatives.csv", infer_schema=False).filter(pl.col("kind") == "sms_gateway")[
                "number"
            ]
        ),
    )


def _national(numbers):
    return {n[3:] for n in numbers}


def test_night_one_sends_both_the_box_and_the_lawful_gateway(loop):
    leads = _leads(loop["outbox"], NIGHTS[0])
    numbers = [set(r["numbers"].split(";")) for r in leads]
    assert any(n & _national(loop["gateway"]) for n in numbers)  # only the field can tell it is lawful
    seized = set(loop["raids"]["numbers"][0].split(";"))
    assert any(n & _national(seized) for n in numbers)
    assert all(r["last_visit"] == "" and r["visited_on"] == "" for r in leads)


def test_the_field_answers_are_imported_by_the_nightly_run(loop):
    feedback = pl.read_parquet(loop["lake"] / "feedback" / "*.parquet")
    assert sorted(feedback["outcome"]) == ["legitimate", "raided"]
    assert set(feedback["visited_on"]) == {NIGHTS[1]}
    hotlist = pl.read_parquet(loop["lake"] / "hotlist" / "hotlist.parquet")
    assert loop["raids"]["imeis"][0] in set(hotlist.filter(pl.col("kind") == "imei")["entity_id"])


def test_the_raided_box_back_with_new_sims_is_a_high_priority_lead_on_its_first_night_back(loop):
    back = NIGHTS[2]
    assert loop["raids"]["back_on"][0] == back.isoformat()
    new_sims = set(loop["den_sims"].filter((pl.col("date") == back.isoformat()))["msisdn"])
    assert not new_sims & set(loop["raids"]["numbers"][0].split(";"))  # fresh SIMs, the same box
    raided = pl.read_parquet(loop["lake"] / "feedback" / "*.parquet").filter(pl.col("outcome") == "raided")
    raided_id = raided["den_id"][0]
    leads = _leads(loop["outbox"], back)
    (lead,) = [r for r in leads if set(r["numbers"].split(";")) & _national(new_sims)]
    assert lead["priority"] == "high"
    assert lead["evidence"].startswith(f"seen again after the raid of {raided_id} on {NIGHTS[1].isoformat()}: ")
    assert raided_id in lead["related_to"].split(";") and "hotlist" in lead["signals"].split(";")
    assert len(set(lead["numbers"].split(";")) & _national(new_sims)) >= 0.8 * len(new_sims)
    assert (lead["last_visit"], lead["last_outcome"]) == (NIGHTS[1].isoformat(), "raided")


def test_the_lawful_gateway_is_never_a_lead_again_and_is_listed_for_analysts(loop):
    gateway = _national(loop["gateway"])
    for night in NIGHTS[1:]:
        assert not any(set(r["numbers"].split(";")) & gateway for r in _leads(loop["outbox"], night)), night
        table = list(
            csv.reader(
                (loop["outbox"] / night.isoformat() / "analysts" / "suppressed.csv")
                .read_bytes()
                .decode("utf-8-sig")
                .splitlines()
            )
        )
        (row,) = [dict(zip(table[0], r)) for r in table[1:]]
        assert set(row["numbers"].split(";")) & gateway
        assert (
            row["reason"].startswith(f"legitimate on {NIGHTS[1].isoformat()} (")
            and "behaviour unchanged" in row["reason"]
        )
        warned = list(
            csv.reader(
                (loop["outbox"] / night.isoformat() / "warnings.csv").read_bytes().decode("utf-8-sig").splitlines()
            )
        )
        assert row["den_id"] not in {w[2] for w in warned[1:]}


def test_evaluate_feedback_prints_field_precision(loop, capsys):
    assert (
        main(["evaluate", "--feedback", "--from", NIGHTS[0].isoformat(), "--to", NIGHTS[2].isoformat(), *loop["argv"]])
        == 0
    )
    out = capsys.readouterr().out
    assert "field precision" in out and "per priority" in out and "leads not yet visited" in out
