"""One scored vehicle (score.vehicle_result) -> its rows of the lake's compliance table
(docs/lake.md), and the single-process writer of those rows. The local and the Spark run of
`trey-export score compliance --lake` both build their rows with compliance_rows()."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from export.lake import tables as LT

ATTRIBUTES = ("year", "material", "condition")


def _value(fact: dict | None, attr: str):
    """The value the model read for an attribute when the classifier gives one (today: the
    year); else null — an attribute's `why` words are evidence, not its value."""
    if not fact or fact.get("state") in (None, "not_stated"):
        return None
    v = fact.get("value")
    if attr == "year":
        return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    return None if v is None else str(v)


def compliance_rows(res: dict, model: str, scored_at: dt.datetime) -> list[dict]:
    """vehicle_result() -> one compliance-table row per component (column order of tables.py,
    plus the `date` partition = UTC day of scored_at)."""
    day = scored_at.astimezone(dt.timezone.utc).date()
    out = []
    for r in res["verdicts"]:
        facts = r.get("facts") or {}
        verdict = r.get("verdict") or ("compliant" if r.get("compliant") else "non_compliant")
        row = {"vehicle_id": res.get("vehicle_id") or res["vin"], "vin": res["vin"], "component": r["component"],
               "verdict": verdict, "compliant": {"compliant": True, "non_compliant": False}.get(verdict),
               "year_value": _value(facts.get("year"), "year")}
        for a in ATTRIBUTES:
            row[f"{a}_state"] = (facts.get(a) or {}).get("state")
        row["material_value"] = _value(facts.get("material"), "material")
        row["condition_value"] = _value(facts.get("condition"), "condition")
        row.update({"missing": list(r.get("missing") or []), "why": list(r.get("why") or []), "model": model,
                    "scored_at": scored_at, LT.PARTITION: day})
        out.append(row)
    return out


def schema_with_partition() -> pa.Schema:
    return LT.SCHEMAS[LT.COMPLIANCE].append(pa.field(LT.PARTITION, pa.date32(), False))


class LocalLakeWriter:
    """Streams rows into LAKE/compliance/date=D/part-<uuid>.parquet of a local lake: written
    under a hidden temporary name, renamed into place by publish() (readers never see half a
    file). One scoring run has one scored_at, so one file."""

    def __init__(self, lake, scored_at: dt.datetime):
        root = str(lake).removeprefix("file://")
        if "://" in root:
            raise ValueError(f"--lake {lake}: the single-process run writes a local lake; use --master for {lake}")
        day = scored_at.astimezone(dt.timezone.utc).date().isoformat()
        self.dir = Path(root) / LT.COMPLIANCE / f"{LT.PARTITION}={day}"
        self.name = f"part-{uuid.uuid4().hex}.parquet"
        self.tmp = self.dir / f".{self.name}.tmp"
        self.schema = LT.SCHEMAS[LT.COMPLIANCE]
        self._writer = None
        self.rows = 0

    def write(self, rows: list[dict]) -> None:
        if not rows:
            return
        if self._writer is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.tmp, self.schema)
        self._writer.write_table(pa.Table.from_pylist(rows, schema=self.schema))
        self.rows += len(rows)

    def publish(self) -> str | None:
        if self._writer is None:
            return None
        self._writer.close()
        os.replace(self.tmp, self.dir / self.name)
        return str(self.dir / self.name)

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self.tmp.unlink(missing_ok=True)
