"""jobs/inventory.py: the cell inventories read by header and checked row by row (one-line errors
naming file and line), the same rows for detect (Spark) and the report (Polars); the whitelist's
entries that are no telephone number reported instead of silently never matching."""

from pathlib import Path

import pytest

from jobs.config import load_config
from jobs.errors import CdrwatchError
from jobs.io import inventory

HEADER = "cell_id,lat,lon,site_name,district\n"
GOOD = HEADER + "4100-1,30.600000,104.000000,锦江区001号基站,锦江区\n4100-2,30.7,104.1,,武侯区\n"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def read(tmp_path: Path, text: str, timezone: str = "Asia/Shanghai"):
    return inventory.read_inventory(write(tmp_path / "cells" / "cm.csv", text), "cm", timezone)


def test_columns_are_found_by_name_in_any_order_with_extras_a_bom_and_crlf(tmp_path):
    text = (
        "\ufeffdistrict, LON ,note,cell_id,lat,site_name\r\n"
        "锦江区,104.000000,x,4100-1,30.600000,锦江区001号基站\r\n"
        "\r\n"
        "武侯区,104.1,\"a, quoted\",4100-2,30.7,\r\n"
    )
    cells, warnings = read(tmp_path, text)
    assert cells == [
        inventory.Cell("cm", "4100-1", 30.6, 104.0, "锦江区001号基站", "锦江区"),
        inventory.Cell("cm", "4100-2", 30.7, 104.1, None, "武侯区"),
    ]
    assert warnings == []


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "cell_id,lon,site_name,district\n1,104,a,b\n",
            ":1: no column 'lat' (columns: cell_id, lon, site_name, district;",
        ),
        (HEADER + "4100-1,,104.0,a,锦江区\n", ":2: lat is empty"),
        (HEADER + "4100-1,30.6,104.0,a,锦江区\n4100-2,30.6,东经104,a,锦江区\n", ":3: lon '东经104' is not a number"),
        (HEADER + "4100-1,nan,104.0,a,锦江区\n", ":2: lat 'nan' is not a number"),
        (
            HEADER + "4100-1,30.6,104.0,a,锦江区\n4100-2,104.06,30.66,b,锦江区\n",
            ":3: cell '4100-2' at lat 104.06, lon 30.66 is outside China (3..54 N, 73..136 E) but inside when swapped: "
            "lat/lon swapped?",
        ),
        (
            HEADER + "4100-1,30.6,104.0,a,锦江区\n 4100-1 ,30.6,104.1,a,锦江区\n",
            ":3: cell '4100-1' is already on line 2 with other values; one cell, one row",
        ),
        (HEADER + " ,30.6,104.0,a,锦江区\n", ":2: cell_id is empty"),
        (HEADER + "4100-1,30.6,104.0,a\n", ":2: 4 fields, the header has 5"),
        (HEADER + "4100-1,30.6,104.0,a,\n", ":2: cell '4100-1' has no district"),
    ],
)
def test_a_bad_row_is_one_error_naming_file_and_line(tmp_path, text, message):
    with pytest.raises(CdrwatchError) as error:
        read(tmp_path, text)
    assert str(error.value).startswith(f"{tmp_path / 'cells' / 'cm.csv'}{message}")
    assert "\n" not in str(error.value)


def test_positions_are_checked_against_the_globe_elsewhere(tmp_path):
    with pytest.raises(CdrwatchError, match=r"cm.csv:2: cell '1' at lat 95, lon 10: lat must be within -90..90$"):
        read(tmp_path, HEADER + "1,95,10,a,d\n", timezone="Europe/Berlin")
    with pytest.raises(CdrwatchError, match=r"cm.csv:2: cell '1' at lat 52, lon 190: lon must be within -180..180$"):
        read(tmp_path, HEADER + "1,52,190,a,d\n", timezone="Europe/Berlin")
    cells, warnings = read(tmp_path, HEADER + "1,52.5,13.4,a,d\n", timezone="Europe/Berlin")
    assert [(c.lat, c.lon) for c in cells] == [(52.5, 13.4)] and warnings == []
    # in China's timezone a position abroad that does not fit swapped either is kept, with a warning
    cells, warnings = read(tmp_path, HEADER + "1,0,0,a,d\n")
    assert len(cells) == 1 and warnings == [
        f"{tmp_path / 'cells' / 'cm.csv'}:2: cell '1' at lat 0, lon 0 is "
        f"outside China (Asia/Shanghai); check its position"
    ]


def test_an_exact_duplicate_row_is_dropped_with_a_warning(tmp_path):
    cells, warnings = read(tmp_path, GOOD + "4100-1,30.6,104,锦江区001号基站,锦江区\n")
    assert [c.cell_id for c in cells] == ["4100-1", "4100-2"]
    assert warnings == [f"{tmp_path / 'cells' / 'cm.csv'}:4: cell '4100-1' repeats line 2 exactly; dropped"]


def test_a_file_that_is_not_utf8_is_refused_with_its_line(tmp_path):
    path = write(tmp_path / "cells" / "cm.csv", GOOD, encoding="gbk")  # saved from Excel as "ANSI"
    with pytest.raises(CdrwatchError, match=r"cm.csv:2: not UTF-8 text \(byte 0x..\); save it as UTF-8$"):
        inventory.read_inventory(path, "cm", "Asia/Shanghai")


def landing_config(tmp_path: Path, carriers: dict[str, str]):
    for carrier, text in carriers.items():
        write(tmp_path / "landing" / "cells" / f"{carrier}.csv", text)
    return load_config(overrides=[f"paths.landing={tmp_path / 'landing'}"])


def test_detect_needs_every_inventory_the_report_takes_what_there_is(tmp_path):
    from jobs.report import data

    config = landing_config(tmp_path, {"cu": HEADER + "460-01-1-1,30.6001,104.0001,联通锦江站,锦江区\n", "cm": GOOD})
    with pytest.raises(CdrwatchError, match=r"cells/ct.csv: cell inventory of carrier ct is missing"):
        inventory.read_cells(config)
    frame = data.read_cells(config)
    assert frame.columns == ["carrier", "cell_id", "lat", "lon", "site_name", "district"]
    assert frame.rows() == [
        ("cm", "4100-1", 30.6, 104.0, "锦江区001号基站", "锦江区"),
        ("cm", "4100-2", 30.7, 104.1, None, "武侯区"),
        ("cu", "460-01-1-1", 30.6001, 104.0001, "联通锦江站", "锦江区"),
    ]


def test_the_report_refuses_a_swapped_inventory_too(tmp_path):
    from jobs.report import data

    config = landing_config(tmp_path, {"cm": HEADER + "4100-1,104.0,30.6,a,锦江区\n"})
    with pytest.raises(CdrwatchError, match="lat/lon swapped"):
        data.read_cells(config)


def test_detect_builds_its_cells_from_the_checked_rows_and_reports_bad_whitelist_entries(tmp_path, spark):
    from jobs import night as detect  # detect builds its cells and whitelist with jobs.night

    site = "<b>[/]站[bold]</b>"
    config = landing_config(
        tmp_path,
        {
            "cm": GOOD + "4100-2,30.7,104.1,,武侯区\n",
            "cu": "cell_id,district,lat,lon,site_name\n460-01-1-1,锦江区,30.6001,104.0001," + site + "\n",
            "ct": HEADER,
        },
    )
    warnings = []
    cells = detect.read_cells(config, spark, warnings)
    assert [tuple(r) for r in cells.orderBy("carrier", "cell_id").collect()] == [
        ("4100-1", 30.6, 104.0, "锦江区001号基站", "锦江区", "cm"),
        ("4100-2", 30.7, 104.1, None, "武侯区", "cm"),
        ("460-01-1-1", 30.6001, 104.0001, site, "锦江区", "cu"),
    ]
    cm = tmp_path / "landing" / "cells" / "cm.csv"
    assert warnings == [f"{cm}:4: cell '4100-2' repeats line 3 exactly; dropped"]

    whitelist = write(
        tmp_path / "landing" / "whitelist.csv",
        "owner,number\r\nbank,13900000009\r\nbank,+86 139 0000 0010\r\noffice,028-85551234\r\n"
        "service,95588\r\nclerk,1390000001\r\nclerk,\r\nabroad,0085512345678\r\n",
    )
    warnings = []
    numbers = sorted(r.number for r in detect.read_whitelist(config, spark, warnings).collect())
    assert numbers == ["+85512345678", "+8613900000009", "+862885551234", "95588"]
    assert warnings == [
        f"{whitelist}:3: whitelist number '+86 139 0000 0010' is not a telephone number; it matches no call",
        f"{whitelist}:6: whitelist number '1390000001' is not a telephone number; it matches no call",
        f"{whitelist}:7: whitelist number '' is not a telephone number; it matches no call",
    ]

    # what detect prints: data is shown as written, never taken for console markup
    from rich.console import Console

    from jobs import render

    console = Console(record=True, width=60)
    render.print_warnings(console, [f"cells/cu.csv:2: cell '{site}' repeats line 1 exactly; dropped"])
    assert console.export_text() == f"warning: cells/cu.csv:2: cell '{site}' repeats line 1 exactly; dropped\n"

    (tmp_path / "landing" / "whitelist.csv").write_text("owner\nbank\n")
    with pytest.raises(CdrwatchError, match=r"whitelist.csv:1: no column 'number' \(columns: owner\)"):
        detect.read_whitelist(config, spark)
