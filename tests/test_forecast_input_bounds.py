"""`trey-agent forecast` on hostile or odd input (issue #10, item 7), against the real CLI
process: far-apart dates, huge numbers, UTF-16, giant fields and lines are refused with
exit 2 naming the line (no traceback, nothing on stdout); sub-daily rows are summed per day;
a battery without any cycles value is reported, not silently dropped; stdout is always JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEADER = "Date,Battery_ID,Battery_Age_Days,Number_Of_Trips,Daily_Trip_Duration,Daily_Cycles_Used," \
         "Lifetime_Cycles_Used,Battery_Rated_Cycles\n"


def _row(date, bid="B1", cyc="0.3", life="", age=""):
    return f"{date},{bid},{age},2,40.0,{cyc},{life},200\n"


def _days(n, bid="B1", start=(2020, 1, 1)):
    import datetime as dt
    d0 = dt.date(*start)
    return "".join(_row((d0 + dt.timedelta(days=i)).isoformat(), bid) for i in range(n))


def _cli(args, data: bytes | None = None, timeout=120):
    return subprocess.run([sys.executable, "-m", "agent.cli", "forecast", *args], input=data,
                          capture_output=True, timeout=timeout)


def _strict_json(line: bytes):
    def no_constants(c):
        raise AssertionError(f"non-JSON constant {c} in output")
    return json.loads(line, parse_constant=no_constants)


def _refused(r, line: int, words: str):
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 2, err
    assert "Traceback" not in err and r.stdout == b"", err
    assert f"line {line}:" in err and words in err, err


@pytest.mark.parametrize("far, words", [("0001-01-01", "outside 1900-01-01..2199-12-31"),
                                        ("9999-12-31", "outside 1900-01-01..2199-12-31")])
def test_year_1_and_year_9999_are_refused_without_building_the_range(tmp_path, far, words):
    f = tmp_path / "h.csv"
    f.write_text(HEADER + _days(40) + _row(far) + _days(40, "B2"))
    _refused(_cli([str(f)], timeout=60), 42, words)


def test_a_history_spanning_more_than_a_century_names_the_line(tmp_path):
    f = tmp_path / "h.csv"
    f.write_text(HEADER + _row("1900-01-01") + _days(30) + _row("2199-12-31"))
    _refused(_cli([str(f)], timeout=60), 33, "a history spans at most 36600")


def test_1e308_is_refused_and_large_legal_values_print_valid_json(tmp_path):
    f = tmp_path / "h.csv"
    f.write_text(HEADER + _days(40) + _row("2020-02-10", cyc="1e308"))
    _refused(_cli([str(f)]), 42, "Daily_Cycles_Used")
    f.write_text(HEADER + _days(40) + _row("2020-02-10", cyc="1e9", life="1e9"))
    r = _cli([str(f)])
    assert r.returncode == 0, r.stderr
    [a] = [_strict_json(line) for line in r.stdout.splitlines()]
    assert a["alert"] is True and a["days_to_rated"] == 0


def test_utf16_file_is_refused_naming_line_1(tmp_path):
    f = tmp_path / "h.csv"
    f.write_bytes((HEADER + _days(30)).encode("utf-16"))
    _refused(_cli([str(f)]), 1, "UTF-16")


def test_non_utf8_bytes_name_their_line(tmp_path):
    f = tmp_path / "h.csv"
    f.write_bytes((HEADER + _days(5)).encode() + b"2020-01-09,B\xff1,,2,40,0.3,,200\n")
    _refused(_cli([str(f)]), 7, "not UTF-8")


def test_a_200k_character_field_is_refused_naming_its_line(tmp_path):
    f = tmp_path / "h.csv"
    f.write_text(HEADER + _days(3) + _row("2020-01-04", bid="X" * 200_000))
    _refused(_cli([str(f)]), 5, "longer than 65536 bytes")


def test_a_1_gb_line_is_refused_after_reading_64_kib_of_it():
    """Streamed on stdin: the agent stops reading at the bound, it never holds the line."""
    p = subprocess.Popen([sys.executable, "-m", "agent.cli", "forecast", "-"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    chunk = b"9" * (1 << 20)
    sent = 0
    try:
        p.stdin.write((HEADER + _days(2)).encode() + b"2020-01-03,B1,")
        for _ in range(1024):                    # up to 1 GiB, as long as the agent still reads
            p.stdin.write(chunk)
            sent += 1
        p.stdin.close()
    except BrokenPipeError:
        pass
    out, err = p.communicate(timeout=120)
    r = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    _refused(r, 4, "longer than 65536 bytes")
    assert sent < 1024, "the agent read the whole gigabyte"


def test_one_minute_rows_are_summed_per_day_not_interpolated(tmp_path):
    """20 days of one row per minute, 0.0005 cycles each: 0.72 cycles/day, lifetime 14.4."""
    import datetime as dt
    t0 = dt.datetime(2021, 3, 1)
    lines = [HEADER]
    for m in range(20 * 1440):
        t = t0 + dt.timedelta(minutes=m)
        lines.append(f"{t:%Y-%m-%d %H:%M:%S},M1,,0,0.1,0.0005,,5000\n")
    f = tmp_path / "minutes.csv"
    f.write_text("".join(lines))
    r = _cli([str(f)])
    assert r.returncode == 0, r.stderr
    [a] = [_strict_json(line) for line in r.stdout.splitlines()]
    assert a["history_days"] == 20 and a["as_of"] == "2021-03-20"
    assert a["lifetime_cycles"] == pytest.approx(14.4, abs=1e-6)


def test_a_battery_without_any_cycles_is_reported(tmp_path):
    f = tmp_path / "h.csv"
    f.write_text(HEADER + _days(40) + "".join(_row(f"2020-01-{d:02d}", bid="EMPTY", cyc="") for d in range(1, 6)))
    r = _cli([str(f)])
    assert r.returncode == 0, r.stderr
    out = [_strict_json(line) for line in r.stdout.splitlines()]
    assert [o["battery_id"] for o in out] == ["B1", "EMPTY"]
    assert out[1] == {"battery_id": "EMPTY", "skipped": "no_cycles", "rows": 5}
    assert "battery EMPTY: no Daily_Cycles_Used" in r.stderr.decode()
