"""The raw layouts in which carriers deliver CDRs (docs/contracts.md).

One entry per format; a carrier's format is chosen in conf. Readers live in `jobs/formats/`.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class RawLayout:
    name: str
    fields: tuple[str, ...]  # in file order (cn_csv: the header text)
    file_globs: tuple[str, ...]
    encoding: str
    header: bool
    doc: str = ""


CN_CSV = RawLayout(
    "cn_csv",
    ("话单标识", "本机号码", "对端号码", "业务类型", "开始时间", "时长", "IMSI", "IMEI", "LAC", "CI"),
    ("*.csv", "*.csv.gz"),
    "utf-8",
    header=True,
    doc="UTF-8 (BOM allowed), comma-separated, local time 'YYYY-MM-DD HH:MM:SS', cell key LAC-CI",
)
CN_CSV_SERVICES = {"主叫": ("out", "voice"), "被叫": ("in", "voice"), "短信发": ("out", "sms"), "短信收": ("in", "sms")}

PIPE_GBK = RawLayout(
    "pipe_gbk",
    (
        "record_id",
        "msisdn",
        "imsi",
        "imei",
        "other_party",
        "direction",
        "service",
        "start",
        "duration",
        "cell",
        "site_name",
    ),
    ("*.txt",),
    "gbk",
    header=False,
    doc="GBK, '|'-separated, CRLF allowed, start YYYYMMDDHHMMSS local, duration HHMMSS",
)
PIPE_GBK_DIRECTIONS = {"0": "out", "1": "in"}
PIPE_GBK_SERVICES = {"V": "voice", "S": "sms"}

JSONL = RawLayout(
    "jsonl",
    ("id", "subscriber", "peer", "dir", "svc", "ts", "dur", "imsi", "imei", "cell"),
    ("*.jsonl.gz",),
    "utf-8",
    header=False,
    doc="gzip JSON lines; ts epoch milliseconds UTC",
)
JSONL_DIRECTIONS = {"out": "out", "in": "in"}
JSONL_SERVICES = {"voice": "voice", "sms": "sms"}

RAW_LAYOUTS = {layout.name: layout for layout in (CN_CSV, PIPE_GBK, JSONL)}
