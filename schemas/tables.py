"""Every table of the lake and the outbox (docs/contracts.md)."""

from schemas.table import Column as C
from schemas.table import Table

CDR = Table(
    "cdr",
    (
        C("record_id", "string", False, "carrier's id of the record; unique per carrier"),
        C("carrier", "string", False, "carrier code from conf (cm, cu, ct, ...)"),
        C("msisdn", "string", False, "the carrier's own subscriber, E.164 (+86...)"),
        C("other_party", "string", True, "E.164 for telephone numbers, digits for service numbers"),
        C("direction", "string", False, "out | in"),
        C("service", "string", False, "voice | sms"),
        C("start_time", "timestamp", False, "event start, an instant"),
        C("duration_s", "int32", False, "seconds; 0 for SMS and unanswered calls"),
        C("imsi", "string", True),
        C("imei", "string", True),
        C("cell_id", "string", True, "the carrier's cell key; join cells/<carrier>.csv"),
        C("source_file", "string", False, "landing file the row came from, relative to landing/"),
        C("source_line", "int64", False, "1-based physical line in the (decompressed) file"),
        C("date", "date", False, "local calendar date of the event (partition)"),
    ),
    partition_by=("date", "carrier"),
    doc="Canonical CDR: one row per event per recording carrier.",
)

QUARANTINE = Table(
    "quarantine",
    (
        C("carrier", "string", False),
        C("source_file", "string", False),
        C("source_line", "int64", False),
        C("raw", "string", True, "the line as read (undecodable bytes replaced by U+FFFD)"),
        C("reason", "string", False, "why the row was not accepted"),
        C("date", "date", False, "the landing date the file was delivered under (partition)"),
    ),
    partition_by=("date", "carrier"),
    doc="Input rows that could not be accepted, with the reason.",
)

ROUTED = Table(
    "routed",
    (
        *[c for c in CDR.columns if c.name != "date"],
        C("raw", "string", True, "the line as read"),
        C("event_date", "date", False, "local calendar date of the event: the partition of lake/cdr it belongs to"),
        C("date", "date", False, "the landing date the file was delivered under (partition)"),
    ),
    partition_by=("date", "carrier"),
    doc="Valid records delivered in another date's folder (late, or just past midnight): kept here by the "
    "ingest of their delivery date, taken into lake/cdr by the ingest of their own date.",
)

CELL = Table(
    "cell",
    (
        C("cell_id", "string", False),
        C("lat", "double", False),
        C("lon", "double", False),
        C("site_name", "string", True),
        C("district", "string", False),
        C("carrier", "string", False, "added on reading landing/cells/<carrier>.csv"),
    ),
    doc="Cell inventory; the same physical site has a different cell_id in every carrier.",
)

WHITELIST = Table(
    "whitelist",
    (C("number", "string", False, "any written form; normalised on reading"), C("owner", "string", True)),
    doc="Registered call centres and the like: never flagged, never a lead.",
)

FLAG = Table(
    "flags",
    (
        C("detector", "string", False),
        C(
            "entity_type",
            "string",
            False,
            "msisdn | imei | cell | presented (a number shown to receivers that no carrier placed: spoofing)",
        ),
        C("entity_id", "string", False),
        C("score", "double", False, "0..1, higher is more suspicious"),
        C("evidence", "string", False, "one sentence an analyst can read"),
        C("date", "date", False),
        # what later steps read (never the evidence text); a detector fills what it knows, the rest is null
        C(
            "site_key",
            "string",
            True,
            "physical site (detectors.rules.sites): the sweep's home site, the congested "
            "site, the GOIP SIM's (device's best SIM's) main site, the low-and-slow room's site",
        ),
        C("segment", "string", True, "number segment swept: the 7 digits after +86 (sequential)"),
        C("range_lo", "string", True, "first number of the swept range, E.164 (sequential)"),
        C("range_hi", "string", True, "last number of the swept range, E.164 (sequential)"),
        C(
            "pattern",
            "string",
            True,
            "how the range was dialled, as a lead says it, e.g. 'in ascending order "
            "round-robin by 13 SIMs' (sequential)",
        ),
        C(
            "window_start",
            "timestamp",
            True,
            "start of what was flagged: the sweep's window, the first "
            "congested hour, the GOIP SIM's (device's) first outgoing event, "
            "the room's first call",
        ),
        C(
            "window_end",
            "timestamp",
            True,
            "its end: the window's end, the last congested hour's end, the last outgoing event, the room's last call",
        ),
        C(
            "related_den",
            "string",
            True,
            "the raided/confirmed den whose hotlisted number, device or site the flag matched (hotlist)",
        ),
    ),
    partition_by=("date",),
    doc="One row per flagged entity per detector. The columns after `date` were added later: a partition "
    "written before them reads them as null.",
)

DEN = Table(
    "dens",
    (
        C("den_id", "string", False, "stable across nights, moves and SIM swaps"),
        C("score", "double", False),
        C("priority", "string", False, "high | medium | low"),
        C("district", "string", True),
        C("lat", "double", True),
        C("lon", "double", True),
        C("radius_m", "double", True),
        C("numbers", "list<string>", False, "member SIMs, E.164"),
        C("imeis", "list<string>", False),
        C("cells", "list<string>", False),
        C("site_names", "list<string>", False),
        C("active_hours", "string", True, "e.g. 09-12;14-18"),
        C("first_seen", "date", False),
        C("last_seen", "date", False),
        C("nights_active", "int32", False),
        C("n_calls", "int64", False),
        C("n_distinct_callees", "int64", False),
        C("n_victims", "int64", False),
        C("signals", "list<string>", False, "detectors that fired on the members"),
        C("evidence", "string", False),
        C(
            "segments",
            "list<string>",
            False,
            "callee number segments it dialled most (7 digits after +86); used to recognise the den on later nights",
        ),
        C("date", "date", False),
        # field history (lake/feedback, lake/hotlist); added later: older partitions read them as null
        C("last_visit", "date", True, "latest visit of a field unit to this den (lake/feedback)"),
        C("last_outcome", "string", True, "its outcome: raided | confirmed | not_found | false_lead | legitimate"),
        C(
            "related_to",
            "list<string>",
            True,
            "raided/confirmed dens whose hotlisted numbers, devices or site this den uses (detector hotlist)",
        ),
        C(
            "suppressed",
            "string",
            True,
            "why the den is not a lead tonight (a false_lead/legitimate outcome, "
            "unchanged behaviour); null: it is a lead",
        ),
    ),
    partition_by=("date",),
)

VICTIMS = Table(
    "victims",
    (
        C("number", "string", False, "the resident, E.164"),
        C("district", "string", True, "district of the resident's most used site that night (else the den's)"),
        C("den_id", "string", False),
        C("first_contact", "timestamp", False, "first call between the den and the resident that night"),
        C("longest_call_s", "int32", False),
        C("n_calls", "int64", False, "voice calls between the den's SIMs and the resident that night"),
        C("date", "date", False),
    ),
    partition_by=("date",),
    doc="Residents who had an answered call of at least export.warning_min_call_s with a den's SIM.",
)

# Daily aggregates of lake/cdr, written by `detect` for its own night: the detectors' baselines and
# look-backs read these for the earlier days, never the earlier days' raw CDRs (jobs/detect.py).
# Whitelisted subscribers' rows are left out, as in everything the detectors see.
SIM_DAY = Table(
    "sim_day",
    (
        C("msisdn", "string", False),
        C("n_out", "int64", False, "outgoing events"),
        C("n_in", "int64", False, "incoming events"),
        C("date", "date", False),
        C(
            "carrier",
            "string",
            True,
            "the carrier whose subscriber it is (the smallest code if two); added later: older partitions read null",
        ),
    ),
    partition_by=("date",),
    doc="One row per subscriber active that day (SIM age, days of history, who is a local subscriber).",
)

DEVICE_DAY = Table(
    "device_day",
    (
        C("imei", "string", False),
        C("msisdn", "string", False),
        C("sim", "string", False, "the IMSI, or the msisdn when the carrier gave none"),
        C("date", "date", False),
    ),
    partition_by=("date",),
    doc="One row per (IMEI, SIM) seen together that day (SIMs per device over the week).",
)

CELL_HOUR = Table(
    "cell_hour",
    (
        C("carrier", "string", False),
        C("cell_id", "string", False),
        C("hour", "int32", False, "local hour 0..23"),
        C("n_out", "int64", False, "outgoing events in the cell in that hour"),
        C("date", "date", False),
    ),
    partition_by=("date",),
    doc="Outgoing events per cell and local hour (the congestion baseline; sites are joined on reading).",
)

CONTACT_DAY = Table(
    "contact_day",
    (
        C("msisdn", "string", False),
        C("other_party", "string", False),
        C("called", "bool", False, "the subscriber placed a voice call to the other party that day"),
        C("date", "date", False),
    ),
    partition_by=("date",),
    doc="One row per (subscriber, other party) with any event that day (strangers vs contacts).",
)

SPOOFED = Table(
    "spoofed",
    (
        C("record_id", "string", False, "the receiver's carrier's id of the incoming leg"),
        C("carrier", "string", False, "the receiver's carrier, which recorded the incoming leg"),
        C("receiver", "string", False, "the resident whose phone rang, E.164"),
        C(
            "presented",
            "string",
            False,
            "the number the receiver's phone showed (E.164, or digits for a "
            "service number), which no carrier placed the call from",
        ),
        C("service", "string", False, "voice | sms"),
        C("start_time", "timestamp", False, "as the receiver's carrier recorded it"),
        C("duration_s", "int32", False, "0 for SMS and unanswered calls"),
        C("cell_id", "string", True, "the receiver's cell"),
        C("district", "string", True, "the receiver's district (by cell)"),
        C(
            "protected",
            "string",
            True,
            "the protected number's name (110 police, a bank's 955xx...) when the "
            "presented number is one; null for a subscriber's number",
        ),
        C(
            "owner_carrier",
            "string",
            True,
            "the carrier whose local subscriber holds the presented number: a "
            "victim of impersonation, not a suspect; null when nobody local does",
        ),
        C(
            "campaign_id",
            "string",
            False,
            "S<date>-<nn>: spoofed legs grouped by time, receivers' segments and presented numbers",
        ),
        C("date", "date", False),
    ),
    partition_by=("date",),
    doc="Incoming legs that no carrier placed: the presented number is a local subscriber's (or protected) and "
    "no outgoing leg of it to the receiver was recorded within detectors.spoofing.tolerance_s (detector "
    "spoofing).",
)

DAILY = (SIM_DAY, DEVICE_DAY, CELL_HOUR, CONTACT_DAY)

OUTCOMES = ("raided", "confirmed", "not_found", "false_lead", "legitimate")
FOUND_OUTCOMES = ("raided", "confirmed")  # a den was there: its numbers, devices and site are hotlisted
CLEARED_OUTCOMES = ("false_lead", "legitimate")  # officers found no den: the same group is suppressed

FEEDBACK = Table(
    "feedback",
    (
        C("den_id", "string", False, "the lead's den_id"),
        C("visited_on", "date", False, "the day the field unit visited"),
        C("outcome", "string", False, " | ".join(OUTCOMES)),
        C("notes", "string", True),
        C("numbers_seized", "list<string>", False, "E.164"),
        C("imeis_seized", "list<string>", False),
        C("source_file", "string", False, "the imported file's name"),
        C("source_row", "int64", False, "row in the file: a CSV's physical line, a workbook's sheet row (header = 1)"),
        C("file_sha256", "string", False, "the imported file's content hash: one lake file per imported file"),
        C("imported_at", "timestamp", False),
    ),
    doc="Field units' outcomes of visited leads (`cdrwatch feedback import`, landing/feedback/): one Parquet file "
    "per imported file, `lake/feedback/<sha256[:16]>.parquet`; history is kept, the latest visit per den wins.",
)

HOTLIST = Table(
    "hotlist",
    (
        C("entity_id", "string", False, "E.164 number, IMEI, or the site as 'lat,lon'"),
        C("kind", "string", False, "msisdn | imei | site"),
        C("den_id", "string", False, "the den whose outcome put it here"),
        C("outcome", "string", False, " | ".join(FOUND_OUTCOMES)),
        C("since", "date", False, "the visit: matched from the next night on"),
        C("expires", "date", False, "the last night it is matched (feedback.hotlist_days after the visit)"),
        C("lat", "double", True, "sites only"),
        C("lon", "double", True, "sites only"),
    ),
    doc="Numbers, devices and sites of dens found on the ground, `lake/hotlist/hotlist.parquet`: rebuilt from "
    "lake/feedback and lake/dens on every import.",
)

LEAD_COLUMNS = (
    "den_id",
    "priority",
    "score",
    "district",
    "lat",
    "lon",
    "radius_m",
    "cells",
    "site_names",
    "active_hours",
    "first_seen",
    "last_seen",
    "nights_active",
    "n_numbers",
    "numbers",
    "n_imeis",
    "imeis",
    "n_calls",
    "n_distinct_callees",
    "n_victims",
    "signals",
    "evidence",
)

LEAD_HISTORY_COLUMNS = ("last_visit", "last_outcome", "related_to")
"""After LEAD_COLUMNS in every lead file: what the field already found (lake/feedback, lake/hotlist)."""
FEEDBACK_INPUT_COLUMNS = ("visited_on", "outcome", "notes", "numbers_seized", "imeis_seized")
"""Last, empty in every lead file: the field unit fills them in and sends the file back."""

WARNING_COLUMNS = ("number", "district", "den_id", "first_contact", "longest_call_s", "n_calls")
WARNING_FILE_COLUMNS = (*WARNING_COLUMNS, "reason")
"""warnings.csv as written: `reason` ('den D…', 'spoofed 110', 'spoofed +86…') after the contract's columns;
for a spoofing warning `den_id` holds the campaign id (S…)."""

TABLES = {
    t.name: t
    for t in (CDR, QUARANTINE, ROUTED, CELL, WHITELIST, FLAG, DEN, VICTIMS, *DAILY, FEEDBACK, HOTLIST, SPOOFED)
}


# The lead file's headers in Chinese (export's default for officers; feedback import reads them back).
CHINESE_LEAD_HEADERS = {
    "den_id": "窝点编号",
    "priority": "优先级",
    "score": "评分",
    "district": "辖区",
    "lat": "纬度",
    "lon": "经度",
    "radius_m": "半径米",
    "cells": "小区",
    "site_names": "基站名称",
    "active_hours": "活跃时段",
    "first_seen": "首次发现",
    "last_seen": "最近发现",
    "nights_active": "活跃天数",
    "n_numbers": "号码数",
    "numbers": "号码",
    "n_imeis": "设备数",
    "imeis": "设备IMEI",
    "n_calls": "呼叫次数",
    "n_distinct_callees": "被叫号码数",
    "n_victims": "受害人数",
    "signals": "信号",
    "evidence": "证据",
    "last_visit": "最近走访",
    "last_outcome": "最近核查结果",
    "related_to": "关联窝点",
    "visited_on": "走访日期",
    "outcome": "核查结果",
    "notes": "备注",
    "numbers_seized": "查获号码",
    "imeis_seized": "查获设备IMEI",
}
