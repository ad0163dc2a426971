"""The dashboard's questions to the lake, in SQL, run by DuckDB over the Parquet tables of
docs/lake.md (read-only) through a snapshot of precomputed aggregates (see `Lake`).

Every view answers {"as_of", "params", "summary", "tables": {name: {"columns", "rows"}},
"notes"}; the HTTP layer serves it as JSON or one table of it as CSV.

Reference time: `as_of` is the newest `received_at` in the lake (daily, status, alerts), not the wall
clock, so "seen in the last 24 h" means relative to the latest data and a stalled ingest shows
as a stale `as_of`, not as a fleet that vanished. Tables that do not exist yet read as empty
with their contract columns; columns a writer has not produced yet (e.g. the compliance
`*_state` columns in older files) read as null.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from agent.schema import DAILY_COLUMNS

log = logging.getLogger(__name__)

_D, _S, _I, _F, _B, _T = "DATE", "VARCHAR", "BIGINT", "DOUBLE", "BOOLEAN", "TIMESTAMPTZ"
_DAILY_TYPES = {"Date": _D, "Battery_ID": _S, "Battery_Age_Days": _I, "Number_Of_Trips": _I}
# The columns the dashboard reads, per table, with their contract types (docs/lake.md).
SCHEMAS = {
    "daily": {**{c: _DAILY_TYPES.get(c, _F) for c in DAILY_COLUMNS},
              "vehicle_id": _S, "msg_id": _S, "received_at": _T},
    "alerts": {"msg_id": _S, "vehicle_id": _S, "change": _S, "alert_id": _I, "key": _S, "kind": _S,
               "severity": _S, "state": _S, "title": _S, "message": _S, "created": _T, "updated": _T,
               "acknowledged": _T, "cleared": _T, "acknowledged_by": _S, "vehicle_date": _D,
               "raised_vehicle_date": _D, "revision": _I, "explanation": _S, "received_at": _T},
    "status": {"msg_id": _S, "vehicle_id": _S, "state": _S, "at": _T, "outbox_rows": _I, "outbox_bytes": _I,
               "outbox_sent": _I, "dropped_telemetry": _I, "dropped_alerts": _I, "downlink_rejected": _S,
               "models": _S, "payload": _S, "received_at": _T},
    "forecasts": {"battery_id": _S, "vehicle_id": _S, "as_of": _D, "lifetime_cycles": _F, "rated_cycles": _F,
                  "forecast_daily_cycles": "DOUBLE[]", "projected_lifetime_cycles_30d": _F,
                  "days_to_rated": _I, "alert": _B, "fallback": _S, "history_days": _I, "model": _S,
                  "scored_at": _T},
    "compliance": {"vehicle_id": _S, "vin": _S, "component": _S, "verdict": _S, "compliant": _B,
                   "year_value": _I, "year_state": _S, "material_state": _S, "condition_state": _S,
                   "material_value": _S, "condition_value": _S, "missing": "VARCHAR[]", "why": "VARCHAR[]",
                   "model": _S, "scored_at": _T},
}
TABLES = tuple(SCHEMAS)
REFRESH_S = 60.0          # how often the lake's files are checked for changes (snapshot rebuild)
RISK_WINDOW_DAYS = 21     # a battery's current forecast = its latest within this many days of the newest run
EOL_BUCKETS = ((0, 30), (31, 60), (61, 90), (91, 180), (181, 365), (366, 730))
# Words of a compliance `why` that name a cause when the *_state columns are null (older data).
_YEAR_RE = r"^[^0-9a-z]?[0-9]{2}([0-9]{2})?s?$"
_MATERIAL_RE = r"(plastic|iron|abs|polypropylene|\bpp\b)"
_CONDITION_RE = r"^(poor|fair)$"


class LakeMissing(RuntimeError):
    """The lake root does not exist (a clear page, not a 500)."""


class BadParam(ValueError):
    def __init__(self, param: str, why: str):
        super().__init__(f"{param}: {why}")
        self.param = param


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _local_root(uri: str) -> tuple[str, bool]:
    """(root DuckDB reads, is_local). s3a:// is Spark's name for what DuckDB calls s3://."""
    if uri.startswith("file://"):
        return uri[len("file://"):], True
    if uri.startswith("s3a://"):
        return "s3://" + uri[len("s3a://"):], False
    if "://" in uri:
        return uri, False
    return str(Path(uri).resolve()), True



_CAUSES = f"""list_filter(CASE WHEN coalesce(year_state, material_state, condition_state) IS NOT NULL
    THEN [CASE WHEN year_state = 'violates' THEN 'year' END,
          CASE WHEN material_state = 'violates' THEN 'material' END,
          CASE WHEN condition_state = 'violates' THEN 'condition' END]
    ELSE [CASE WHEN len(list_filter(why, lambda w: regexp_matches(lower(w), '{_YEAR_RE}'))) > 0 THEN 'year' END,
          CASE WHEN len(list_filter(why, lambda w: regexp_matches(lower(w), '{_MATERIAL_RE}'))) > 0 THEN 'material' END,
          CASE WHEN len(list_filter(why, lambda w: regexp_matches(lower(w), '{_CONDITION_RE}'))) > 0 THEN 'condition' END]
    END, lambda x: x IS NOT NULL)"""
_LATEST = "QUALIFY row_number() OVER (PARTITION BY {by} ORDER BY {order}) = 1"
# The snapshot: what each view reads, derived once per lake change instead of once per request.
SNAPSHOT_SQL = (
    # one vehicle's history = a range of this table (sorted: DuckDB's zone maps skip the rest)
    """CREATE TABLE daily AS SELECT vehicle_id, Date, Battery_ID, Daily_Cycles_Used, Lifetime_Cycles_Used,
         Battery_Rated_Cycles, Number_Of_Trips, Daily_Trip_Duration, Min_Cranking_Voltage, Resting_Voltage,
         Min_Temperature, Max_Temperature, received_at FROM src_daily ORDER BY vehicle_id, Date""",
    "CREATE TABLE alerts AS SELECT * FROM src_alerts ORDER BY vehicle_id, updated, revision",
    f"""CREATE TABLE alert_latest AS SELECT vehicle_id, alert_id, state, kind, severity, updated FROM alerts
         {_LATEST.format(by="vehicle_id, alert_id", order="revision DESC, updated DESC")}""",
    f"""CREATE TABLE status_latest AS
         WITH l AS (SELECT vehicle_id, state, "at", received_at FROM src_status
                    {_LATEST.format(by="vehicle_id", order='"at" DESC, received_at DESC')}),
              o AS (SELECT vehicle_id, "at" AS online_at, outbox_rows, outbox_bytes, outbox_sent, dropped_telemetry,
                           dropped_alerts, downlink_rejected, models FROM src_status WHERE state = 'online'
                    {_LATEST.format(by="vehicle_id", order='"at" DESC, received_at DESC')})
         SELECT * FROM l LEFT JOIN o USING (vehicle_id) ORDER BY vehicle_id""",
    """CREATE TABLE seen AS SELECT vehicle_id, max(received_at) AS last_seen FROM (
         SELECT vehicle_id, received_at FROM daily UNION ALL SELECT vehicle_id, received_at FROM src_status
         UNION ALL SELECT vehicle_id, received_at FROM alerts) GROUP BY vehicle_id ORDER BY vehicle_id""",
    # the battery each vehicle reported last: a forecast for a battery replaced since is history
    f"""CREATE TABLE current_battery AS SELECT vehicle_id, Battery_ID AS battery_id FROM daily
         {_LATEST.format(by="vehicle_id", order="Date DESC")}""",
    f"""CREATE TABLE forecasts_latest AS
         WITH per_model AS (SELECT * EXCLUDE (date), coalesce(vehicle_id, battery_id) AS vkey FROM src_forecasts
                            {_LATEST.format(by="coalesce(vehicle_id, battery_id), model", order="as_of DESC, scored_at DESC")})
         SELECT per_model.*, row_number() OVER (PARTITION BY vkey ORDER BY as_of DESC, scored_at DESC) = 1 AS is_latest,
                coalesce(c.battery_id <> per_model.battery_id, false) AS replaced,
                list_avg(forecast_daily_cycles) AS daily_cycles,
                greatest(rated_cycles - lifetime_cycles, 0) AS remaining_cycles,
                CASE WHEN days_to_rated IS NOT NULL THEN days_to_rated
                     WHEN list_avg(forecast_daily_cycles) > 0
                     THEN ceil(greatest(rated_cycles - lifetime_cycles, 0) / list_avg(forecast_daily_cycles))::BIGINT
                END AS days_to_eol,
                CASE WHEN days_to_rated IS NOT NULL THEN 'forecast' ELSE 'extrapolated' END AS basis
         FROM per_model LEFT JOIN current_battery c ON c.vehicle_id = per_model.vehicle_id ORDER BY vkey""",
    # forecast vs realised: the same battery's lifetime 30 days after as_of
    """CREATE TABLE forecast_pairs AS
         SELECT f.model, f.as_of, f.alert, f.projected_lifetime_cycles_30d - f.lifetime_cycles AS forecast_30d,
                d.Lifetime_Cycles_Used - f.lifetime_cycles AS realised_30d,
                d.Lifetime_Cycles_Used >= f.rated_cycles AS reached
         FROM src_forecasts f JOIN daily d ON d.Battery_ID = f.battery_id AND d.Date = f.as_of + 30""",
    "CREATE TABLE forecast_runs AS SELECT model, as_of, count(*) AS forecasts FROM src_forecasts GROUP BY ALL",
    # ... summed per (model, scoring day): the accuracy view's filters aggregate a few hundred rows
    """CREATE TABLE forecast_accuracy AS
         SELECT model, as_of, count(*) AS n, sum(forecast_30d) AS s_forecast, sum(realised_30d) AS s_realised,
                sum(abs(forecast_30d - realised_30d)) AS s_abs, sum(forecast_30d - realised_30d) AS s_err,
                sum(abs(forecast_30d - realised_30d) / nullif(realised_30d, 0)) AS s_pct,
                count(nullif(realised_30d, 0)) AS n_pct, count(*) FILTER (WHERE alert) AS eol_alerts,
                count(*) FILTER (WHERE alert AND reached) AS alerts_reached, count(*) FILTER (WHERE reached) AS reached
         FROM forecast_pairs GROUP BY ALL""",
    # overview: per-day alert changes, per-vehicle model versions and refusals, exploded once
    "CREATE TABLE alerts_daily AS SELECT date, kind, change, count(*) AS n FROM alerts GROUP BY ALL",
    """CREATE TABLE status_models AS SELECT s.vehicle_id, j.key AS slot,
         json_extract_string(j.value, '$.version') AS version FROM status_latest s, json_each(s.models) j""",
    """CREATE TABLE status_rejected AS SELECT s.vehicle_id, j.key AS reason, j.value::BIGINT AS n
         FROM status_latest s, json_each(s.downlink_rejected) j""",
    f"""CREATE TABLE compliance_current AS
         SELECT * EXCLUDE (date), {_CAUSES} AS causes,
                coalesce(year_state, material_state, condition_state) IS NOT NULL AS from_states
         FROM src_compliance {_LATEST.format(by="vehicle_id, component", order="scored_at DESC")}
         ORDER BY vehicle_id, component""",
    """CREATE TABLE compliance_by_part AS
         SELECT component, count(*) FILTER (WHERE verdict = 'non_compliant') AS non_compliant,
                count(*) FILTER (WHERE verdict = 'undetermined') AS undetermined,
                count(*) FILTER (WHERE verdict = 'compliant') AS compliant,
                count(DISTINCT vehicle_id) FILTER (WHERE verdict <> 'compliant') AS vehicles_affected
         FROM compliance_current GROUP BY component""",
    """CREATE TABLE lake_meta AS SELECT
         (SELECT count(*) FROM daily) AS daily, (SELECT count(*) FROM alerts) AS alerts,
         (SELECT count(*) FROM src_status) AS status, (SELECT count(*) FROM src_forecasts) AS forecasts,
         (SELECT count(*) FROM src_compliance) AS compliance,
         (SELECT max(last_seen) FROM seen) AS as_of, (SELECT max(Date) FROM daily) AS daily_until""",
)


def _close_and_remove(con, path: str) -> None:
    try:
        con.close()
    finally:
        for p in (path, path + ".wal"):
            if os.path.exists(p):
                os.remove(p)


class Lake:
    """The lake, read through a snapshot: a DuckDB database file (in a temp dir, never in the
    lake) holding the aggregates and indexes the views need, built from the Parquet tables at
    start and rebuilt in the background when their files change. Measured on 20,000 vehicles
    x 2 years (bench/bench_dashboard.py, README): the same views straight over the ~3,000
    Parquet files took 8.5 s (overview), 8.1 s (accuracy) and 2.9 s (one vehicle) per request,
    each paying for opening every file and re-deriving every vehicle's latest state; from the
    snapshot they answer in tens of milliseconds."""

    def __init__(self, uri: str, threads: int | None = None, memory_limit: str = "2GB",
                 refresh_s: float | None = REFRESH_S):
        self.uri = uri
        self.root, self.local = _local_root(uri)
        self.threads, self.memory_limit = threads, memory_limit
        self._lock = threading.Lock()
        self._tmp = tempfile.mkdtemp(prefix="trey-dashboard-")
        self._gen = 0
        self._path = None            # the snapshot file being served
        self.con = None
        self.info: dict = {}
        self._fingerprint = None
        self._stop = threading.Event()
        if self.exists():
            self.build()
        if refresh_s and self.local:
            threading.Thread(target=self._watch, args=(refresh_s,), name="dashboard-refresh", daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if self.con is not None:
                self.con.close()
                self.con = None
            shutil.rmtree(self._tmp, ignore_errors=True)

    # ------------------------------------------------------------------ sources
    def exists(self) -> bool:
        return not self.local or Path(self.root).is_dir()

    def _glob(self, table: str) -> str:
        return f"{self.root}/{table}/**/*.parquet"

    def files(self, table: str) -> list[str]:
        """A local table's committed Parquet files: a writer's work in progress (Spark's
        `_temporary/`, hidden or `_`-prefixed names) is not part of the table yet."""
        out = []
        for dirpath, dirs, files in os.walk(Path(self.root) / table):
            dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
            out += [os.path.join(dirpath, f) for f in sorted(files)
                    if f.endswith(".parquet") and not f.startswith(("_", "."))]
        return out

    def fingerprint(self):
        """(files, bytes, newest mtime) per table: changes when a writer adds or replaces files."""
        if not self.local:
            return None
        out = []
        for t in TABLES:
            n = size = newest = 0
            for f in self.files(t):
                try:
                    st = os.stat(f)
                except FileNotFoundError:     # replaced under us: the next check sees the new one
                    continue
                n, size, newest = n + 1, size + st.st_size, max(newest, st.st_mtime_ns)
            out.append((t, n, size, newest))
        return tuple(out)

    def _configure(self, con, read_only: bool) -> None:
        con.execute(f"SET temp_directory={_q(self._tmp)}")
        con.execute(f"SET memory_limit={_q(self.memory_limit)}")
        con.execute("SET TimeZone='UTC'")
        con.execute("SET enable_progress_bar=false")     # stdout is the CLI's (it prints the URL)
        if self.threads:
            con.execute(f"SET threads={int(self.threads)}")
        if self.local:
            # Defense in depth (no SQL comes from a request): these connections read the lake
            # and their own snapshot, nothing else on the machine, and nobody can change that.
            allowed = [self._tmp] + ([] if read_only else [self.root])
            con.execute(f"SET allowed_directories=[{', '.join(_q(a) for a in allowed)}]")
            con.execute("SET enable_external_access=false")
        con.execute("SET lock_configuration=true")

    def _sources(self, con) -> dict[str, bool]:
        """One view src_<table> per table over its Parquet files, with the contract's columns
        (missing columns as typed nulls, a missing table as an empty relation)."""
        present = {}
        for t, schema in SCHEMAS.items():
            cols: set[str] = set()
            src = None
            files = self.files(t) if self.local else [self._glob(t)]
            if files:
                src = (f"read_parquet([{', '.join(_q(f) for f in files)}], hive_partitioning=true, "
                       "union_by_name=true, hive_types={'date': DATE})")
                try:
                    cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
                except Exception as exc:       # unreadable files: say so, serve the rest
                    log.warning("lake table %s unreadable: %s", t, exc)
                    src, cols = None, set()
            # every column as its contract type: another writer's int32 or timezone-naive
            # timestamps (Spark) read the same; what does not convert reads as null
            sel = ", ".join(f'TRY_CAST("{c}" AS {ty}) AS "{c}"' if c in cols else f'NULL::{ty} AS "{c}"'
                            for c, ty in schema.items())
            sql = f"SELECT {sel}, NULL::DATE AS date WHERE false" if src is None else f"SELECT {sel}, date FROM {src}"
            con.execute(f"CREATE VIEW src_{t} AS {sql}")
            present[t] = bool(cols)
        return present

    def build(self) -> dict:
        """Build a new snapshot from the lake and switch to it (the old one keeps serving meanwhile)."""
        import duckdb
        with self._lock:
            fp = self.fingerprint()
            started = time.monotonic()
            self._gen += 1
            path = os.path.join(self._tmp, f"snapshot-{self._gen}.duckdb")
            if os.path.exists(path):     # a failed build's leftovers
                os.remove(path)
            con = duckdb.connect(path)
            try:
                self._configure(con, read_only=False)
                present = self._sources(con)
                for stmt in SNAPSHOT_SQL:
                    con.execute(stmt)
                con.execute("CREATE TABLE present AS SELECT * FROM (VALUES " +
                            ", ".join(f"({_q(t)}, {str(ok).lower()})" for t, ok in present.items()) +
                            ") v(tbl, present)")
                con.execute("CHECKPOINT")
            finally:
                con.close()
            serving = duckdb.connect(path, read_only=True)
            self._configure(serving, read_only=True)
            old, old_path = self.con, self._path
            self.con, self._path = serving, path
            self._fingerprint = fp
            self._as_of_cache = None
            self.info = {"built_at": dt.datetime.now(dt.timezone.utc), "build_s": round(time.monotonic() - started, 2),
                         "snapshot_bytes": os.path.getsize(path)}
            log.info("lake snapshot %d built in %.1f s (%s -> %s)", self._gen, self.info["build_s"], self.uri, path)
            if old is not None:          # closed once the requests already running on it are done
                t = threading.Timer(60.0, _close_and_remove, (old, old_path))
                t.daemon = True
                t.start()
            return self.info

    def refresh_if_changed(self) -> bool:
        """Rebuild the snapshot if the lake's files changed since the last build."""
        if not self.exists() or (self.con is not None and self.fingerprint() == self._fingerprint):
            return False
        self.build()
        return True

    def _watch(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self.refresh_if_changed()
            except Exception:
                log.exception("lake snapshot refresh failed; still serving the previous one")

    def present(self) -> dict[str, bool]:
        return dict(self._rows("SELECT tbl, present FROM present")[1])

    def _rows(self, sql: str, params=()) -> tuple[list[str], list[tuple]]:
        if self.con is None:
            raise LakeMissing(f"no lake at {self.uri}")
        cur = self.con.cursor()
        try:
            res = cur.execute(sql, list(params))
            cols = [d[0] for d in res.description]
            return cols, res.fetchall()
        finally:
            cur.close()

    def _table(self, sql: str, params=()) -> dict:
        cols, rows = self._rows(sql, params)
        return {"columns": cols, "rows": [list(r) for r in rows]}

    def _one(self, sql: str, params=()):
        return self._rows(sql, params)[1][0]

    # ------------------------------------------------------------------ reference time
    def as_of(self) -> dict:
        """{"as_of": newest received_at in the lake, "date": its UTC day, "daily_until": last Date}."""
        if not self.exists() or self.con is None:
            raise LakeMissing(f"no lake at {self.uri}")
        ts, until = self._rows("SELECT as_of, daily_until FROM lake_meta")[1][0]
        return {"as_of": ts, "date": ts.date() if ts is not None else None, "daily_until": until}

    def _answer(self, params: dict, tables: dict, summary: dict | None = None, notes=None) -> dict:
        ref = self.as_of()
        empty = [t for t, ok in self.present().items() if not ok]
        notes = list(notes or [])
        if empty:
            notes.append("no data yet in: " + ", ".join(empty))
        return {"as_of": ref["as_of"], "snapshot_built_at": self.info.get("built_at"), "params": params,
                "summary": summary or {}, "tables": tables, "notes": notes}

    # ------------------------------------------------------------------ views
    def overview(self, days: int = 90, kind: str | None = None) -> dict:
        ref = self.as_of()
        kind_sql, kp = ("AND kind = ?", [kind]) if kind else ("", [])
        per_day = self._table(f"""
            SELECT date, kind, change, n::BIGINT AS alerts FROM alerts_daily
            WHERE date > ?::DATE - ?::INTEGER {kind_sql} ORDER BY date, kind, change""",
                              [ref["date"], days, *kp])
        open_ = self._table(f"""
            SELECT kind, severity, count(*)::BIGINT AS open_alerts, count(DISTINCT vehicle_id)::BIGINT AS vehicles
            FROM alert_latest WHERE state <> 'cleared' {kind_sql} GROUP BY ALL ORDER BY kind, severity""", kp)
        seen = self._one("""
            SELECT count(*), count(*) FILTER (WHERE last_seen > ?::TIMESTAMPTZ - INTERVAL 24 HOUR),
                   count(*) FILTER (WHERE last_seen > ?::TIMESTAMPTZ - INTERVAL 7 DAY) FROM seen""",
                         [ref["as_of"], ref["as_of"]])
        sync = self._one("""
            SELECT count(*), count(*) FILTER (WHERE state = 'offline'),
                   coalesce(sum(dropped_telemetry), 0)::BIGINT, count(*) FILTER (WHERE dropped_telemetry > 0),
                   coalesce(sum(dropped_alerts), 0)::BIGINT, count(*) FILTER (WHERE dropped_alerts > 0),
                   coalesce(sum(outbox_rows), 0)::BIGINT, count(*) FILTER (WHERE outbox_rows >= 100)
            FROM status_latest""")
        rejected = self._table("""
            SELECT reason, count(DISTINCT vehicle_id)::BIGINT AS vehicles, sum(n)::BIGINT AS refused
            FROM status_rejected GROUP BY ALL ORDER BY refused DESC, reason""")
        models = self._table("""
            SELECT slot, version, count(*)::BIGINT AS vehicles
            FROM status_models GROUP BY ALL ORDER BY slot, vehicles DESC, version""")
        sync_t = {"columns": ["metric", "value"], "rows": [
            ["vehicles with a status", sync[0]], ["offline (last will)", sync[1]],
            ["telemetry rows dropped (outbox bound)", sync[2]], ["vehicles that dropped telemetry", sync[3]],
            ["alerts dropped", sync[4]], ["vehicles that dropped alerts", sync[5]],
            ["rows waiting in outboxes", sync[6]], ["vehicles with >= 100 rows waiting", sync[7]]]}
        seen_t = {"columns": ["window", "vehicles"], "rows": [["last 24 h", seen[1]], ["last 7 d", seen[2]],
                                                              ["ever", seen[0]]]}
        n_open = sum(r[2] for r in open_["rows"])
        return self._answer(
            {"days": days, "kind": kind},
            {"alerts_per_day": per_day, "open_alerts": open_, "seen": seen_t, "sync": sync_t,
             "downlink_rejected": rejected, "models": models},
            {"vehicles": seen[0], "seen_24h": seen[1], "seen_7d": seen[2], "open_alerts": n_open,
             "offline": sync[1], "dropped_telemetry": sync[2]},
            ["open = the latest revision of each alert is not cleared; seen = any message received "
             "(daily row, status, alert) relative to as_of, the newest message in the lake."])

    RISK_COLS = ("vehicle_id", "battery_id", "as_of", "lifetime_cycles", "rated_cycles", "remaining_cycles",
                 "daily_cycles", "days_to_eol", "eol_date", "basis", "model", "alert", "fallback")

    def _current(self, model: str | None) -> tuple[str, list]:
        """Each vehicle's current forecast (of `model`, else of the latest run), if it is within
        RISK_WINDOW_DAYS of the newest scoring run (older = the car stopped being scored) and
        its battery is still the one the car reports (not replaced since)."""
        pick, p = ("model = ?", [model]) if model else ("is_latest", [])
        return (f"""SELECT vehicle_id, battery_id, as_of, lifetime_cycles, rated_cycles,
                           round(remaining_cycles, 2) AS remaining_cycles, round(daily_cycles, 4) AS daily_cycles,
                           days_to_eol, as_of + days_to_eol::INTEGER AS eol_date, basis, model, alert, fallback
                    FROM forecasts_latest f WHERE {pick}
                      AND as_of >= (SELECT max(as_of) FROM forecasts_latest) - {RISK_WINDOW_DAYS}
                      AND NOT replaced""", p)

    def battery_risk(self, within: int = 90, model: str | None = None, q: str | None = None,
                     sort: str = "eol_date", order: str = "asc", limit: int = 1000) -> dict:
        ref = self.as_of()
        if sort not in self.RISK_COLS:
            raise BadParam("sort", f"one of {', '.join(self.RISK_COLS)}")
        cur, mp = self._current(model)
        filt, fp = "", []
        if q:
            filt = "AND (vehicle_id ILIKE ? OR battery_id ILIKE ?)"
            fp = [f"%{q}%", f"%{q}%"]
        d = ref["date"]
        srow = self._one(f"""
            WITH c AS ({cur})
            SELECT count(*), count(*) FILTER (WHERE eol_date <= ?::DATE + 30),
                   count(*) FILTER (WHERE eol_date <= ?::DATE + 60), count(*) FILTER (WHERE eol_date <= ?::DATE + 90),
                   max(as_of) FROM c""", [*mp, d, d, d])
        table = self._table(f"""
            WITH c AS ({cur})
            SELECT *, count(*) OVER () AS _total FROM c WHERE eol_date <= ?::DATE + ?::INTEGER {filt}
            ORDER BY "{sort}" {"DESC" if order == "desc" else "ASC"} NULLS LAST, vehicle_id LIMIT ?""",
                            [*mp, d, within, *fp, limit])
        total = table["rows"][0][-1] if table["rows"] else 0
        table["columns"].pop()
        for r in table["rows"]:
            r.pop()
        buckets = " ".join(f"WHEN days_to_eol BETWEEN {a} AND {b} THEN '{a}-{b} d'" for a, b in EOL_BUCKETS)
        dist = self._table(f"""
            WITH c AS ({cur}),
            b AS (SELECT CASE {buckets} WHEN days_to_eol > {EOL_BUCKETS[-1][1]} THEN '> {EOL_BUCKETS[-1][1]} d'
                              ELSE 'unknown' END AS bucket, coalesce(days_to_eol, 1e9) AS k FROM c)
            SELECT bucket AS days_to_eol, count(*)::BIGINT AS batteries FROM b GROUP BY bucket ORDER BY min(k)""", mp)
        models = [r[0] for r in self._rows("SELECT DISTINCT model FROM forecast_runs WHERE model IS NOT NULL "
                                           "ORDER BY model")[1]]
        return self._answer(
            {"within": within, "model": model, "q": q, "sort": sort, "order": order, "limit": limit},
            {"risk": table, "distribution": dist},
            {"batteries": srow[0], "eol_30d": srow[1], "eol_60d": srow[2], "eol_90d": srow[3],
             "forecast_as_of": srow[4], "matching": total, "models": models},
            ["days_to_eol: the model's days_to_rated within its 30-day horizon ('forecast'); beyond it, "
             "remaining cycles / the forecast's mean daily cycles ('extrapolated'). eol_date = as_of + days_to_eol; "
             "'within N days' counts from the lake's as_of."])

    def accuracy(self, model: str | None = None, since=None, until=None) -> dict:
        """Forecast vs realised 30-day cycles by model version (realised = the battery's lifetime
        cycles in `daily` on as_of + 30 minus lifetime at as_of)."""
        ref = self.as_of()
        where, p = ["1=1"], []
        if model:
            where.append("model = ?")
            p.append(model)
        if since:
            where.append("as_of >= ?::DATE")
            p.append(since)
        if until:
            where.append("as_of <= ?::DATE")
            p.append(until)
        w = " AND ".join(where)
        metrics = """round(sum(s_abs) / sum(n), 4) AS mae_cycles, round(sum(s_err) / sum(n), 4) AS bias_cycles"""
        by_model = self._table(f"""
            SELECT model, sum(n)::BIGINT AS forecasts, round(sum(s_forecast) / sum(n), 4) AS mean_forecast_30d,
                   round(sum(s_realised) / sum(n), 4) AS mean_realised_30d, {metrics},
                   round(100 * sum(s_pct) / nullif(sum(n_pct), 0), 2) AS mape_pct,
                   sum(eol_alerts)::BIGINT AS eol_alerts, sum(alerts_reached)::BIGINT AS alerts_reached,
                   sum(reached)::BIGINT AS reached_rated
            FROM forecast_accuracy WHERE {w} GROUP BY model ORDER BY model""", p)
        by_month = self._table(f"""
            SELECT strftime(date_trunc('month', as_of), '%Y-%m') AS month, model, sum(n)::BIGINT AS forecasts,
                   {metrics}
            FROM forecast_accuracy WHERE {w} GROUP BY ALL ORDER BY month, model""", p)
        pending = self._one(f"SELECT coalesce(sum(forecasts), 0)::BIGINT FROM forecast_runs WHERE {w} "
                            "AND as_of + 30 > ?::DATE", [*p, ref["daily_until"]])[0]
        return self._answer({"model": model, "since": since, "until": until},
                            {"by_model": by_model, "by_month": by_month}, {"not_yet_realised": pending},
                            ["realised = lifetime cycles of the same battery 30 days after as_of (daily table); "
                             "forecasts younger than 30 days or whose battery has no row that day are left out. "
                             "Precision of end-of-life alerts = alerts_reached / eol_alerts."])

    def compliance(self, part: str | None = None, cause: str | None = None, verdict: str | None = None,
                   limit: int = 1000) -> dict:
        self.as_of()
        where, p = ["verdict IN ('non_compliant', 'undetermined')"], []
        if verdict:
            where = ["verdict = ?"]
            p.append(verdict)
        if part:
            where.append("component = ?")
            p.append(part)
        if cause == "not_stated":
            where.append("verdict = 'undetermined'")
        elif cause:
            where.append("list_contains(causes, ?)")
            p.append(cause)
        w = " AND ".join(where)
        by_part = self._table(f"""
            SELECT component, non_compliant::BIGINT AS non_compliant, undetermined::BIGINT AS undetermined,
                   compliant::BIGINT AS compliant, vehicles_affected::BIGINT AS vehicles_affected
            FROM compliance_by_part WHERE {"component = ?" if part else "1=1"}
            ORDER BY non_compliant + undetermined DESC, component""", [part] if part else [])
        by_cause = self._table(f"""
            WITH u AS (SELECT vehicle_id, unnest(CASE WHEN verdict = 'undetermined' THEN ['not_stated']
                                                     ELSE causes END) AS cause FROM compliance_current WHERE {w})
            SELECT cause, count(*)::BIGINT AS components, count(DISTINCT vehicle_id)::BIGINT AS vehicles
            FROM u GROUP BY cause ORDER BY components DESC, cause""", p)
        items = self._table(f"""
            SELECT vehicle_id, vin, component, verdict, array_to_string(causes, ', ') AS causes,
                   array_to_string(why, ', ') AS why, array_to_string(missing, ', ') AS missing,
                   year_value, material_value, condition_value, model, scored_at,
                   CASE WHEN from_states THEN 'attribute states' ELSE 'why words' END AS cause_from
            FROM compliance_current WHERE {w} ORDER BY vehicle_id, component LIMIT ?""", [*p, limit])
        totals = self._one("SELECT coalesce(sum(non_compliant + undetermined + compliant), 0)::BIGINT, "
                           "coalesce(sum(non_compliant), 0)::BIGINT, coalesce(sum(undetermined), 0)::BIGINT "
                           "FROM compliance_by_part")
        sel = self._one(f"SELECT count(*), count(DISTINCT vehicle_id) FROM compliance_current WHERE {w}", p)
        s = (*totals, *sel)
        parts = [r[0] for r in self._rows("SELECT component FROM compliance_by_part ORDER BY 1")[1]]
        return self._answer({"part": part, "cause": cause, "verdict": verdict, "limit": limit},
                            {"by_part": by_part, "by_cause": by_cause, "components": items},
                            {"components": s[0], "non_compliant": s[1], "undetermined": s[2], "matching": s[3],
                             "vehicles_affected": s[4], "parts": parts},
                            ["current verdict = the latest scoring of each (vehicle, component). Cause = the "
                             "attributes whose *_state is 'violates'; where those columns are null (older "
                             "scoring runs), the cause is read from the words in `why`."])

    def vehicles(self, q: str, limit: int = 20) -> dict:
        self.as_of()
        t = self._table("SELECT vehicle_id, last_seen FROM seen WHERE vehicle_id ILIKE ? ORDER BY vehicle_id LIMIT ?",
                        [f"%{q}%", limit])
        return self._answer({"q": q, "limit": limit}, {"vehicles": t})

    def vehicle(self, id: str, days: int = 365) -> dict | None:   # noqa: A002 (the URL parameter)
        vid = id
        ref = self.as_of()
        hist = self._table("""
            SELECT Date, Battery_ID, Daily_Cycles_Used, Lifetime_Cycles_Used, Battery_Rated_Cycles,
                   Number_Of_Trips, Daily_Trip_Duration, Min_Cranking_Voltage, Resting_Voltage,
                   Min_Temperature, Max_Temperature
            FROM daily WHERE vehicle_id = ? AND Date > ?::DATE - ?::INTEGER ORDER BY Date""",
                           [vid, ref["daily_until"], days])
        fc = self._rows("""
            SELECT battery_id, as_of, lifetime_cycles, rated_cycles, forecast_daily_cycles,
                   projected_lifetime_cycles_30d, days_to_rated, days_to_eol, basis, alert, fallback, history_days,
                   model, scored_at
            FROM forecasts_latest WHERE vkey = ? AND is_latest""", [vid])
        forecast = {"columns": ["day", "date", "forecast_daily_cycles", "projected_lifetime_cycles"], "rows": []}
        latest_fc = None
        if fc[1]:
            latest_fc = dict(zip(fc[0], fc[1][0]))
            life = latest_fc["lifetime_cycles"] or 0.0
            for k, v in enumerate(latest_fc.pop("forecast_daily_cycles") or [], start=1):
                life += v or 0.0
                forecast["rows"].append([k, latest_fc["as_of"] + dt.timedelta(days=k), v, round(life, 4)])
        alerts = self._table("""
            SELECT updated, change, alert_id, kind, severity, state, title, message, vehicle_date, revision,
                   acknowledged_by, json_extract_string(explanation, '$.summary') AS explanation
            FROM alerts WHERE vehicle_id = ? ORDER BY updated, revision""", [vid])
        comps = self._table("""
            SELECT component, verdict, array_to_string(why, ', ') AS why, array_to_string(causes, ', ') AS causes,
                   array_to_string(missing, ', ') AS missing, year_value, material_value, condition_value,
                   model, scored_at FROM compliance_current WHERE vehicle_id = ?
            ORDER BY verdict = 'compliant', verdict, component""", [vid])
        st = self._rows("""
            SELECT state, "at", online_at, outbox_rows, outbox_bytes, outbox_sent, dropped_telemetry, dropped_alerts,
                   downlink_rejected, models, received_at FROM status_latest WHERE vehicle_id = ?""", [vid])
        status = {"columns": ["field", "value"], "rows": [[k, v] for k, v in zip(st[0], st[1][0])] if st[1] else []}
        if not (hist["rows"] or fc[1] or alerts["rows"] or comps["rows"] or st[1]):
            return None
        return self._answer({"id": vid, "days": days},
                            {"battery_history": hist, "forecast": forecast, "alerts": alerts,
                             "components": comps, "status": status},
                            {"vehicle_id": vid, "forecast": latest_fc,
                             "battery_id": hist["rows"][-1][1] if hist["rows"] else None})

    def meta(self) -> dict:
        ref = self.as_of()
        cols, rows = self._rows("SELECT daily, alerts, status, forecasts, compliance FROM lake_meta")
        counts = dict(zip(cols, rows[0]))
        present = self.present()
        return {"as_of": ref["as_of"], "daily_until": ref["daily_until"], "lake": self.uri,
                "snapshot": self.info,
                "tables": {t: {"present": present.get(t, False), "rows": counts[t]} for t in TABLES}}
