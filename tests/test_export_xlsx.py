"""The officers' workbooks against their CSVs, with the pure `build_outbox` (no Spark): every value
equal, nothing cut at Excel's 32,767-character cell limit, no text ever a formula."""

import csv
import datetime as dt
import io
import re
import zipfile
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from jobs.export import EXCEL_CELL_MAX, build_outbox, safe_text, xlsx_bytes

DAY = dt.date(2026, 11, 20)
LIST_COLUMNS = {"cells", "site_names", "numbers", "imeis", "signals"}
NUMBER_COLUMNS = {
    "score",
    "lat",
    "lon",
    "radius_m",
    "nights_active",
    "n_numbers",
    "n_imeis",
    "n_calls",
    "n_distinct_callees",
    "n_victims",
    "longest_call_s",
}
# Formula starters as a spreadsheet sees them, written out independently of jobs.export.
FORMULA = "=+-@\uff1d\uff0b\uff0d\uff20"
LEADING_BLANKS = re.compile(r"^[\s\u00a0\u1680\u2000-\u200f\u202f\u205f\u2060\u3000\ufeff\x00-\x1f]*")


def starts_formula(text):
    first = LEADING_BLANKS.sub("", text)[:1]
    return first != "" and first in FORMULA


def den(den_id, district="武侯区", numbers=("+8613900000001",), **extra):
    row = dict(
        den_id=den_id,
        score=0.8,
        priority="high",
        district=district,
        lat=30.641234567,
        lon=104.043,
        radius_m=312.4,
        numbers=list(numbers),
        imeis=["860000000000011"],
        cells=["cm-1", "cu-1"],
        site_names=["武侯祠站"],
        active_hours="09-12;14-18",
        first_seen=DAY - dt.timedelta(days=2),
        last_seen=DAY,
        nights_active=3,
        n_calls=1234,
        n_distinct_callees=900,
        n_victims=2,
        signals=["goip", "sequential"],
        evidence="sequential dialling",
    )
    row.update(extra)
    return row


def victim(number, den_id, district="武侯区", seconds=300):
    return dict(
        number=number,
        district=district,
        den_id=den_id,
        first_contact_epoch=1_795_000_000 + seconds,
        longest_call_s=seconds,
        n_calls=2,
    )


def build(dens, victims=(), districts=("武侯区", "锦江区")):
    files, summary = build_outbox(list(dens), list(victims), districts, set(), timezone="Asia/Shanghai")
    return files, summary


def csv_rows(data):
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def assert_twins(csv_data, xlsx_data):
    """Same rows, same columns, same text (the CSV's formula quote is the workbook's quote prefix),
    numbers equal as numbers; a cell pointing to the members sheet is rebuilt from it first."""
    rows = csv_rows(csv_data)
    book = load_workbook(io.BytesIO(xlsx_data))
    sheet = book.worksheets[0]
    spilled = defaultdict(list)
    if "members" in book.sheetnames:
        for key, kind, value in list(book["members"].iter_rows())[1:]:
            assert (key.data_type, kind.data_type, value.data_type) == ("s", "s", "s")
            spilled[(key.value, kind.value)].append(value.value)
    cells = list(sheet.iter_rows())
    assert len(cells) == len(rows)
    header = rows[0]
    assert [c.value for c in cells[0]] == header
    for text_row, cell_row in zip(rows[1:], cells[1:]):
        assert len(cell_row) == len(text_row) == len(header)
        for name, text, cell in zip(header, text_row, cell_row):
            value = cell.value
            if value is None:
                assert text == "", (name, text)
            elif name in NUMBER_COLUMNS:
                assert cell.data_type == "n" and float(text) == value, (name, text, value)
            else:
                assert cell.data_type == "s", (name, value)
                if "see sheet members" in value:
                    value = (";" if name in LIST_COLUMNS else "").join(spilled.pop((text_row[0], name)))
                assert text == ("'" + value if cell.quotePrefix else value), (name, text, value)
                assert cell.quotePrefix or not starts_formula(value), value
    assert not spilled, sorted(spilled)
    with zipfile.ZipFile(io.BytesIO(xlsx_data)) as z:  # written with write_string: no formula anywhere
        assert not any(
            b"<f>" in z.read(n) or b"<f " in z.read(n) for n in z.namelist() if n.startswith("xl/worksheets/")
        )


TRICKY = [
    "=HYPERLINK(\"http://x\",\"y\")",
    "\r=cmd|' /C calc'!A0",
    " =1+1",
    "\u00a0=HYPERLINK(\"x\")",
    "\uff1d1+1",
    "\uff0bx",
    "\uff0d2",
    "\uff20SUM(A1)",
    "\t=1",
    "\u3000@x",
    "\ufeff+1",
    "-5 calls a minute",
    "a\nb\r\nc",
    "line\u2028sep",
    "武侯 [/] [bold]x",
    "plain",
]


def test_every_value_of_every_file_equals_its_csv():
    dens = [
        den(f"den-{i:02d}", evidence=e, site_names=["武侯祠站", e], active_hours=e if i % 2 else None)
        for i, e in enumerate(TRICKY)
    ]
    dens += [
        den(
            "den-neg",
            district="锦江区",
            lat=-33.8651,
            lon=-151.2099,
            score=0.123456,
            radius_m=0.4,
            numbers=["+862885551234", "+85512345678", "+8613900000002"],
        ),
        den("den-nopos", lat=None, lon=None, evidence=None),  # -> analysts
        den("den-foreign", numbers=["+85512340000", "+66812345678"], evidence="=x"),  # -> analysts
        den("den-big", numbers=[f"+86139{i:08d}" for i in range(3000)]),  # spills
    ]
    victims = [
        victim("+8613811112222", "den-00"),
        victim("+862887654321", "den-neg", "锦江区", 61),
        victim("+8613811113333", "den-01", None, 900),
    ]
    files, _ = build(dens, victims)
    assert sorted(files) == sorted(
        f"{stem}.{ext}"
        for stem in (
            "leads/武侯区",
            "leads/锦江区",
            "warnings",
            "analysts/unlocated_dens",
            "analysts/suppressed",
            "analysts/spoofing",
        )
        for ext in ("csv", "xlsx")
    )
    for name in files:
        if name.endswith(".csv"):
            assert_twins(files[name], files[name[:-4] + ".xlsx"])
    wuhou = csv_rows(files["leads/武侯区.csv"])
    assert len(wuhou) == 1 + len(TRICKY) + 1
    unlocated = csv_rows(files["analysts/unlocated_dens.csv"])
    assert {r[0]: r[-1] for r in unlocated[1:]} == {"den-nopos": "no position", "den-foreign": "only foreign numbers"}
    assert len(csv_rows(files["warnings.csv"])) == 4


def test_a_3000_number_den_is_whole_in_the_workbook():
    numbers = [f"+86139{i:08d}" for i in range(3000)]
    imeis = [f"86{i:013d}" for i in range(3000)]
    evidence = "sequential dialling of 1390000; " * 1300  # 41,600 characters
    files, _ = build([den("den-big", numbers=numbers, imeis=imeis, evidence=evidence)])
    national = [n[3:] for n in numbers]

    (header, row) = csv_rows(files["leads/武侯区.csv"])
    lead = dict(zip(header, row))
    assert lead["numbers"] == ";".join(sorted(national)) and lead["n_numbers"] == "3000"  # the CSV is whole
    assert lead["imeis"] == ";".join(imeis) and lead["evidence"] == evidence

    book = load_workbook(io.BytesIO(files["leads/武侯区.xlsx"]))
    assert book.sheetnames == ["cdrwatch", "members"]
    cells = {h.value: c for h, c in zip(*book["cdrwatch"].iter_rows())}
    assert cells["numbers"].value == "3,000 numbers: see sheet members"
    assert cells["imeis"].value == "3,000 imeis: see sheet members"
    assert cells["evidence"].value == "41,600 characters of evidence: see sheet members, 2 rows to read in order"
    assert cells["n_numbers"].value == 3000 and cells["den_id"].value == "den-big"
    members = [[c.value for c in r] for r in book["members"].iter_rows()]
    assert members[0] == ["den_id", "kind", "value"]
    by_kind = defaultdict(list)
    for den_id, kind, value in members[1:]:
        assert den_id == "den-big"
        by_kind[kind].append(value)
    assert by_kind["numbers"] == sorted(national) and len(set(by_kind["numbers"])) == 3000
    assert by_kind["imeis"] == imeis  # 15-digit IMEIs, whole, as text
    assert "".join(by_kind["evidence"]) == evidence and max(map(len, by_kind["evidence"])) <= EXCEL_CELL_MAX
    assert all(c.data_type == "s" for r in book["members"].iter_rows() for c in r)


def test_cells_just_under_the_limit_stay_in_place_and_emoji_count_double():
    fits = "x" * EXCEL_CELL_MAX
    emoji = "\U0001f600" * (EXCEL_CELL_MAX // 2 + 1)  # 16,384 code points, 32,768 UTF-16 units
    data = xlsx_bytes(["id", "a", "b"], [["r1", fits, emoji]], [None, None, None])
    book = load_workbook(io.BytesIO(data))
    (_, row) = [[c.value for c in r] for r in book.worksheets[0].iter_rows()]
    assert row[1] == fits
    assert row[2] == "32,768 characters of b: see sheet members, 2 rows to read in order"
    assert "".join(r[2].value for r in list(book["members"].iter_rows())[1:]) == emoji


def test_workbook_bytes_are_the_same_on_a_rerun():
    dens = [den("den-a", evidence="=x"), den("den-big", numbers=[f"+86139{i:08d}" for i in range(3000)])]
    assert build(dens)[0] == build(dens)[0]


@pytest.mark.parametrize(
    "text",
    [
        "\r=cmd",
        " =1+1",
        "\u00a0=HYPERLINK(\"x\")",
        "\uff1d1+1",
        "\uff0b1",
        "\uff0d1",
        "\uff20x",
        "\n+1",
        "\u3000-1",
        "\u200b=1",
        "\ufeff@a",
        "\t x",
        "=1",
        "+1",
        "-1",
        "@a",
    ],
)
def test_formula_starts_behind_blanks_and_full_width_are_guarded(text):
    out = safe_text(text)
    assert out.startswith("'"), out
    assert "\r" not in out and "\n" not in out


@pytest.mark.parametrize(
    "text", ["13912345678", "武侯祠站", "a=b", "x-1", "", " ", "'=already quoted", "0085512345678"]
)
def test_harmless_text_is_unchanged(text):
    assert safe_text(text) == text


BLANKS_AND_STARTERS = st.sampled_from(
    [
        " ",
        "\t",
        "\r",
        "\n",
        "\r\n",
        "\u00a0",
        "\u3000",
        "\u2003",
        "\u200b",
        "\ufeff",
        "\u2028",
        "=",
        "+",
        "-",
        "@",
        "\uff1d",
        "\uff0b",
        "\uff0d",
        "\uff20",
        "1",
        "a",
        "武",
    ]
)
TEXT = st.lists(st.one_of(BLANKS_AND_STARTERS, st.characters()), max_size=12).map("".join)


@settings(max_examples=400, deadline=None)
@given(TEXT)
def test_safe_text_only_adds_a_quote_and_always_neutralises(text):
    out = safe_text(text)
    flat = re.sub(r"\r\n|[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]", " ", text)
    assert out in (flat, "'" + flat)  # one line, nothing else changed
    if out == flat:
        assert not starts_formula(flat), repr(text)


PRINTABLE = st.characters(blacklist_categories=("Cs", "Cc"))  # what xlsxwriter keeps verbatim
CELL_TEXT = st.lists(st.one_of(BLANKS_AND_STARTERS, PRINTABLE), max_size=10).map("".join)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(CELL_TEXT, CELL_TEXT, st.floats(-180, 180)), min_size=1, max_size=4))
def test_any_text_is_the_same_in_both_twins(rows):
    dens = [den(f"den-{i}", evidence=ev, site_names=[site], lon=lon) for i, (ev, site, lon) in enumerate(rows)]
    files, _ = build(dens)
    assert_twins(files["leads/武侯区.csv"], files["leads/武侯区.xlsx"])
