"""landing/protected_numbers.csv: entries added to the conf's, a bad row one warning naming file and line."""

import pytest

from jobs.errors import CdrwatchError
from jobs.io.inventory import read_protected_numbers


def test_rows_become_entries_and_a_bad_row_is_one_warning(tmp_path):
    path = tmp_path / "protected_numbers.csv"
    path.write_text(
        "\ufeffnumber,name,services\n12388,纪委举报,voice\n0288xxxxxxx,某区法院,\n1-2-3x,bad,fax\n", encoding="utf-8"
    )
    entries, warnings = read_protected_numbers(path)
    assert entries == [
        {"number": "12388", "name": "纪委举报", "services": ["voice"]},
        {"number": "0288xxxxxxx", "name": "某区法院", "services": ["voice", "sms"]},
    ]
    assert warnings == [
        f"{path}:4: protected number '1-2-3x' (services 'fax') is not a number pattern with voice/sms; ignored"
    ]


def test_no_file_is_no_entries_and_a_missing_column_names_the_file(tmp_path):
    assert read_protected_numbers(tmp_path / "absent.csv") == ([], [])
    path = tmp_path / "protected_numbers.csv"
    path.write_text("number\n110\n", encoding="utf-8")
    with pytest.raises(CdrwatchError, match=r"protected_numbers.csv:1: no column 'name'"):
        read_protected_numbers(path)
