"""The demo lake keeps docs/lake.md's contract (every documented column, its type, NOT NULL),
the dashboard reads only documented columns with their documented types, and the generator
is deterministic (same seed, same tables)."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from agent.schema import DAILY_COLUMNS
from export.dashboard.demo_lake import generate
from export.dashboard.queries import SCHEMAS

DOC = Path(__file__).resolve().parents[1] / "docs" / "lake.md"
TYPES = {"string": pa.string(), "int64": pa.int64(), "double": pa.float64(), "bool": pa.bool_(),
         "date": pa.date32(), "ts": pa.timestamp("us", tz="UTC"), "JSON": pa.string(),
         "list<double>": pa.list_(pa.float64()), "list<string>": pa.list_(pa.string())}
DUCK = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(),
        "DATE": pa.date32(), "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"), "DOUBLE[]": pa.list_(pa.float64()),
        "VARCHAR[]": pa.list_(pa.string())}


def documented() -> dict[str, dict[str, tuple[pa.DataType, bool]]]:
    """docs/lake.md -> {table: {column: (type, not_null)}} (the tables the dashboard reads)."""
    out, cur = {}, None
    for line in DOC.read_text().splitlines():
        m = re.match(r"^## (\w+) ", line)
        if m:
            cur = out.setdefault(m.group(1), {}) if m.group(1) in SCHEMAS else None
            continue
        m = re.match(r"^\| ([^|*]+?) \| (list<\w+>|\w+)", line)
        if cur is None or not m or m.group(2) not in TYPES:
            continue
        for col in m.group(1).split(","):
            cur[col.strip()] = (TYPES[m.group(2)], "NOT NULL" in line)
    return out


def _table(root, name):
    return ds.dataset(Path(root) / name, format="parquet", partitioning="hive").to_table()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    generate(root / "a", vehicles=40, days=90, seed=5)
    generate(root / "b", vehicles=40, days=90, seed=5)
    return root


def test_demo_lake_keeps_the_documented_contract(tiny):
    doc = documented()
    assert set(doc) == set(SCHEMAS) and all(doc.values())
    for name, cols in doc.items():
        t = _table(tiny / "a", name)
        assert t.num_rows > 0, name
        for col, (typ, not_null) in cols.items():
            assert col in t.schema.names, (name, col)
            assert t.schema.field(col).type == typ, (name, col, t.schema.field(col).type)
            if not_null:
                assert t[col].null_count == 0, (name, col)
        assert "date" in t.schema.names          # hive partition date=YYYY-MM-DD
    daily = _table(tiny / "a", "daily")
    assert set(DAILY_COLUMNS) <= set(daily.schema.names)
    assert len(set(daily["msg_id"].to_pylist())) == daily.num_rows     # unique across the table


def test_dashboard_reads_documented_columns_only():
    doc = documented()
    for name, cols in SCHEMAS.items():
        for col, duck in cols.items():
            if name == "daily" and col in DAILY_COLUMNS and col not in doc[name]:
                continue                      # "further columns of DAILY_COLUMNS" (typed by the agent)
            assert col in doc[name], (name, col)
            assert DUCK[duck] == doc[name][col][0], (name, col)


def test_same_seed_same_lake(tiny):
    for name in SCHEMAS:
        a, b = _table(tiny / "a", name), _table(tiny / "b", name)
        assert a.num_rows == b.num_rows and a.equals(b), name
