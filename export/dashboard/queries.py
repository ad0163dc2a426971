"""The dashboard's questions to the lake, in SQL, run by DuckDB straight over the Parquet
tables of docs/lake.md (read-only; hive partition `date` prunes by time).

Every view answers {"as_of", "params", "summary", "tables": {name: {"columns", "rows"}},
"notes"}; the HTTP layer serves it as JSON or one table of it as CSV.

Reference time: `as_of` is the newest `received_at` in the lake (daily, status), not the wall
clock, so "seen in the last 24 h" means relative to the latest data and a stalled ingest shows
as a stale `as_of`, not as a fleet that vanished. Tables that do not exist yet read as empty
with their contract columns; columns a writer has not produced yet (e.g. the compliance
`*_state` columns in older files) read as null.
"""

from __future__ import annotations

import logging
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
REFRESH_S = 30.0          # how often new tables / columns are looked for
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


class Lake:
    def __init__(self, uri: str, threads: int | None = None, memory_limit: str = "2GB"):
        import duckdb
        self.uri = uri
        self.root, self.local = _local_root(uri)
        self._lock = threading.Lock()
        self._refreshed = 0.0
        self._present: dict[str, set[str]] = {}
        self._as_of_cache: tuple[float, dict] | None = None
        self._tmp = tempfile.mkdtemp(prefix="trey-dashboard-")
        self.con = duckdb.connect(":memory:")
        self.con.execute(f"SET temp_directory={_q(self._tmp)}")
        self.con.execute(f"SET memory_limit={_q(memory_limit)}")
        self.con.execute("SET TimeZone='UTC'")
        self.con.execute("SET parquet_metadata_cache=true")     # 3,650 footers once, not per request
        if threads:
            self.con.execute(f"SET threads={int(threads)}")
        if self.local:
            # Defense in depth (no SQL comes from a request): this connection can read the
            # lake and nothing else on the machine, and nobody can change that.
            self.con.execute(f"SET allowed_directories=[{_q(self.root)}, {_q(self._tmp)}]")
            self.con.execute("SET enable_external_access=false")
        self.con.execute("SET lock_configuration=true")
        self.refresh(force=True)

    # ------------------------------------------------------------------ sources
    def exists(self) -> bool:
        return not self.local or Path(self.root).is_dir()

    def _glob(self, table: str) -> str:
        return f"{self.root}/{table}/**/*.parquet"

    def _has_files(self, table: str) -> bool:
        if not self.local:
            return True
        d = Path(self.root) / table
        return d.is_dir() and next(d.rglob("*.parquet"), None) is not None

    def refresh(self, force: bool = False) -> None:
        """(Re)define one view per table over its Parquet files, with the contract's columns."""
        if not force and time.monotonic() - self._refreshed < REFRESH_S:
            return
        with self._lock:
            if not force and time.monotonic() - self._refreshed < REFRESH_S:
                return
            cur = self.con.cursor()
            present: dict[str, set[str]] = {}
            for t, schema in SCHEMAS.items():
                cols: set[str] = set()
                src = None
                if self.exists() and self._has_files(t):
                    src = (f"read_parquet({_q(self._glob(t))}, hive_partitioning=true, union_by_name=true, "
                           "hive_types={'date': DATE})")
                    try:
                        cols = {r[0] for r in cur.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
                    except Exception as exc:       # unreadable files: say so, serve the rest
                        log.warning("lake table %s unreadable: %s", t, exc)
                        src, cols = None, set()
                sel = ", ".join(f'"{c}"' if c in cols else f'NULL::{ty} AS "{c}"' for c, ty in schema.items())
                if src is None:
                    sql = f"SELECT {sel}, NULL::DATE AS date WHERE false"
                else:
                    sql = f"SELECT {sel}, date FROM {src}"
                cur.execute(f"CREATE OR REPLACE VIEW {t} AS {sql}")
                present[t] = cols
            self._present = present
            self._refreshed = time.monotonic()
            self._as_of_cache = None

    def present(self) -> dict[str, bool]:
        return {t: bool(c) for t, c in self._present.items()}

    def _rows(self, sql: str, params=()) -> tuple[list[str], list[tuple]]:
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
        """{"as_of": newest received_at, "date": its UTC day} (cached for a few seconds)."""
        if not self.exists():
            raise LakeMissing(f"no lake at {self.uri}")
        self.refresh()
        c = self._as_of_cache
        if c and time.monotonic() - c[0] < 10.0:
            return c[1]
        ts = self._one("""
            SELECT greatest(
              (SELECT max(received_at) FROM daily WHERE date >= (SELECT max(date) FROM daily) - 3),
              (SELECT max(received_at) FROM status WHERE date >= (SELECT max(date) FROM status) - 3))""")[0]
        out = {"as_of": ts, "date": ts.date() if ts is not None else None}
        self._as_of_cache = (time.monotonic(), out)
        return out

    def _answer(self, params: dict, tables: dict, summary: dict | None = None, notes=None) -> dict:
        ref = self.as_of()
        empty = [t for t, ok in self.present().items() if not ok]
        notes = list(notes or [])
        if empty:
            notes.append("no data yet in: " + ", ".join(empty))
        return {"as_of": ref["as_of"], "params": params, "summary": summary or {}, "tables": tables,
                "notes": notes}

    # ------------------------------------------------------------------ views
    def overview(self, days: int = 90, kind: str | None = None) -> dict:
        ref = self.as_of()
        if ref["as_of"] is None:
            return self._answer({"days": days, "kind": kind}, {}, {"vehicles": 0})
        kind_sql, kp = ("AND kind = ?", [kind]) if kind else ("", [])
        per_day = self._table(f"""
            SELECT date, kind, change, count(*)::BIGINT AS alerts FROM alerts
            WHERE date > ?::DATE - ?::INTEGER {kind_sql} GROUP BY ALL ORDER BY date, kind, change""",
                              [ref["date"], days, *kp])
        open_ = self._table(f"""
            WITH latest AS (
              SELECT vehicle_id, alert_id, state, kind, severity FROM alerts
              QUALIFY row_number() OVER (PARTITION BY vehicle_id, alert_id ORDER BY revision DESC, updated DESC) = 1)
            SELECT kind, severity, count(*)::BIGINT AS open_alerts, count(DISTINCT vehicle_id)::BIGINT AS vehicles
            FROM latest WHERE state <> 'cleared' {kind_sql} GROUP BY ALL ORDER BY kind, severity""", kp)
        seen = self._one("""
            WITH recent AS (
              SELECT vehicle_id, received_at FROM daily WHERE date >= ?::DATE - 9
              UNION ALL SELECT vehicle_id, received_at FROM status WHERE date >= ?::DATE - 8)
            SELECT count(DISTINCT vehicle_id) FILTER (WHERE received_at > ?::TIMESTAMPTZ - INTERVAL 24 HOUR),
                   count(DISTINCT vehicle_id) FILTER (WHERE received_at > ?::TIMESTAMPTZ - INTERVAL 7 DAY)
            FROM recent""", [ref["date"], ref["date"], ref["as_of"], ref["as_of"]])
        latest = """
            WITH latest AS (
              SELECT vehicle_id, state FROM status
              QUALIFY row_number() OVER (PARTITION BY vehicle_id ORDER BY "at" DESC, received_at DESC) = 1),
            online AS (
              SELECT vehicle_id, dropped_telemetry, dropped_alerts, outbox_rows, downlink_rejected, models
              FROM status WHERE state = 'online'
              QUALIFY row_number() OVER (PARTITION BY vehicle_id ORDER BY "at" DESC, received_at DESC) = 1)"""
        sync = self._one(latest + """
            SELECT count(*), count(*) FILTER (WHERE l.state = 'offline'),
                   coalesce(sum(o.dropped_telemetry), 0)::BIGINT, count(*) FILTER (WHERE o.dropped_telemetry > 0),
                   coalesce(sum(o.dropped_alerts), 0)::BIGINT, count(*) FILTER (WHERE o.dropped_alerts > 0),
                   coalesce(sum(o.outbox_rows), 0)::BIGINT, count(*) FILTER (WHERE o.outbox_rows >= 100)
            FROM latest l LEFT JOIN online o USING (vehicle_id)""")
        rejected = self._table(latest + """
            SELECT j.key AS reason, count(DISTINCT o.vehicle_id)::BIGINT AS vehicles,
                   sum(j.value::BIGINT)::BIGINT AS refused
            FROM online o, json_each(o.downlink_rejected) j GROUP BY ALL ORDER BY refused DESC, reason""")
        models = self._table(latest + """
            SELECT j.key AS slot, json_extract_string(j.value, '$.version') AS version,
                   count(*)::BIGINT AS vehicles
            FROM online o, json_each(o.models) j GROUP BY ALL ORDER BY slot, vehicles DESC, version""")
        sync_t = {"columns": ["metric", "value"], "rows": [
            ["vehicles with a status", sync[0]], ["offline (last will)", sync[1]],
            ["telemetry rows dropped (outbox bound)", sync[2]], ["vehicles that dropped telemetry", sync[3]],
            ["alerts dropped", sync[4]], ["vehicles that dropped alerts", sync[5]],
            ["rows waiting in outboxes", sync[6]], ["vehicles with >= 100 rows waiting", sync[7]]]}
        seen_t = {"columns": ["window", "vehicles"], "rows": [["last 24 h", seen[0]], ["last 7 d", seen[1]]]}
        total = self._one("SELECT count(DISTINCT vehicle_id) FROM status")[0]
        n_open = sum(r[2] for r in open_["rows"])
        return self._answer(
            {"days": days, "kind": kind},
            {"alerts_per_day": per_day, "open_alerts": open_, "seen": seen_t, "sync": sync_t,
             "downlink_rejected": rejected, "models": models},
            {"vehicles": total, "seen_24h": seen[0], "seen_7d": seen[1], "open_alerts": n_open,
             "offline": sync[1], "dropped_telemetry": sync[2]})

    _RISK_COLS = ("vehicle_id", "battery_id", "as_of", "lifetime_cycles", "rated_cycles", "remaining_cycles",
                  "daily_cycles", "days_to_eol", "eol_date", "basis", "model", "alert", "fallback")

    def _current_forecasts(self, model: str | None) -> tuple[str, list]:
        """SQL (+params) of each vehicle's current forecast: its latest within RISK_WINDOW_DAYS
        of the newest scoring run, with end of life estimated beyond the 30-day horizon."""
        mf, mp = ("AND model = ?", [model]) if model else ("", [])
        return f"""
            WITH recent AS (
              SELECT * FROM forecasts WHERE date >= (SELECT max(date) FROM forecasts) - {RISK_WINDOW_DAYS} {mf}),
            cur AS (
              SELECT * EXCLUDE (date) FROM recent
              QUALIFY row_number() OVER (PARTITION BY coalesce(vehicle_id, battery_id)
                                         ORDER BY as_of DESC, scored_at DESC) = 1),
            est AS (
              SELECT *, list_avg(forecast_daily_cycles) AS daily_cycles,
                     greatest(rated_cycles - lifetime_cycles, 0) AS remaining_cycles,
                     CASE WHEN days_to_rated IS NOT NULL THEN days_to_rated
                          WHEN list_avg(forecast_daily_cycles) > 0
                          THEN ceil((rated_cycles - lifetime_cycles) / list_avg(forecast_daily_cycles))::BIGINT
                     END AS days_to_eol,
                     CASE WHEN days_to_rated IS NOT NULL THEN 'forecast' ELSE 'extrapolated' END AS basis
              FROM cur)
            SELECT vehicle_id, battery_id, as_of, lifetime_cycles, rated_cycles, round(remaining_cycles, 2)
                   AS remaining_cycles, round(daily_cycles, 4) AS daily_cycles, days_to_eol,
                   as_of + days_to_eol::INTEGER AS eol_date, basis, model, alert, fallback FROM est""", mp

    def battery_risk(self, within: int = 90, model: str | None = None, q: str | None = None,
                     sort: str = "eol_date", order: str = "asc", limit: int = 1000) -> dict:
        ref = self.as_of()
        if sort not in self._RISK_COLS:
            raise BadParam("sort", f"one of {', '.join(self._RISK_COLS)}")
        cur_sql, mp = self._current_forecasts(model)
        filt, fp = "", []
        if q:
            filt = "AND (vehicle_id ILIKE ? OR battery_id ILIKE ?)"
            fp = [f"%{q}%", f"%{q}%"]
        ref_date = ref["date"]
        summary_row = self._one(f"""
            WITH c AS ({cur_sql})
            SELECT count(*), count(*) FILTER (WHERE eol_date <= ?::DATE + 30),
                   count(*) FILTER (WHERE eol_date <= ?::DATE + 60), count(*) FILTER (WHERE eol_date <= ?::DATE + 90),
                   max(as_of) FROM c""", [*mp, ref_date, ref_date, ref_date]) if ref_date else (0, 0, 0, 0, None)
        table = self._table(f"""
            WITH c AS ({cur_sql})
            SELECT *, count(*) OVER () AS _total FROM c WHERE eol_date <= ?::DATE + ?::INTEGER {filt}
            ORDER BY "{sort}" {"DESC" if order == "desc" else "ASC"} NULLS LAST, vehicle_id LIMIT ?""",
                            [*mp, ref_date, within, *fp, limit])
        total = table["rows"][0][-1] if table["rows"] else 0
        table["columns"].pop()
        for r in table["rows"]:
            r.pop()
        buckets = " ".join(f"WHEN days_to_eol BETWEEN {a} AND {b} THEN '{a}-{b} d'" for a, b in EOL_BUCKETS)
        dist = self._table(f"""
            WITH c AS ({cur_sql}),
            b AS (SELECT CASE {buckets} WHEN days_to_eol > {EOL_BUCKETS[-1][1]} THEN '> {EOL_BUCKETS[-1][1]} d'
                              ELSE 'unknown' END AS bucket, coalesce(days_to_eol, 1e9) AS k FROM c)
            SELECT bucket AS days_to_eol, count(*)::BIGINT AS batteries FROM b GROUP BY bucket ORDER BY min(k)""", mp)
        models = [r[0] for r in self._rows("SELECT DISTINCT model FROM forecasts WHERE model IS NOT NULL "
                                           "ORDER BY model")[1]]
        notes = ["days_to_eol: the model's days_to_rated within its 30-day horizon ('forecast'); beyond it, "
                 "remaining cycles / the forecast's mean daily cycles ('extrapolated')."]
        return self._answer(
            {"within": within, "model": model, "q": q, "sort": sort, "order": order, "limit": limit},
            {"risk": table, "distribution": dist},
            {"batteries": summary_row[0], "eol_30d": summary_row[1], "eol_60d": summary_row[2],
             "eol_90d": summary_row[3], "forecast_as_of": summary_row[4], "matching": total, "models": models},
            notes)

    def accuracy(self, model: str | None = None, since=None, until=None) -> dict:
        """Forecast vs realised 30-day cycles by model version: realised = the battery's
        lifetime cycles in `daily` on as_of + 30 minus lifetime at as_of."""
        self.as_of()
        where, p = ["1=1"], []
        if model:
            where.append("f.model = ?")
            p.append(model)
        if since:
            where.append("f.date >= ?::DATE")
            p.append(since)
        if until:
            where.append("f.date <= ?::DATE")
            p.append(until)
        w = " AND ".join(where)
        pairs = f"""
            WITH f AS (SELECT battery_id, as_of, date, model, lifetime_cycles, rated_cycles, alert,
                              projected_lifetime_cycles_30d - lifetime_cycles AS forecast_30d FROM forecasts f WHERE {w}),
            d AS (SELECT Battery_ID, Date, Lifetime_Cycles_Used FROM daily
                  WHERE date >= (SELECT min(date) FROM f) + 30 AND date <= (SELECT max(date) FROM f) + 30),
            p AS (SELECT f.*, d.Lifetime_Cycles_Used - f.lifetime_cycles AS realised_30d,
                         d.Lifetime_Cycles_Used >= f.rated_cycles AS reached
                  FROM f JOIN d ON d.Battery_ID = f.battery_id AND d.Date = f.as_of + 30)"""
        by_model = self._table(pairs + """
            SELECT model, count(*)::BIGINT AS forecasts, round(avg(forecast_30d), 4) AS mean_forecast_30d,
                   round(avg(realised_30d), 4) AS mean_realised_30d,
                   round(avg(abs(forecast_30d - realised_30d)), 4) AS mae_cycles,
                   round(avg(forecast_30d - realised_30d), 4) AS bias_cycles,
                   round(100 * avg(abs(forecast_30d - realised_30d) / nullif(realised_30d, 0)), 2) AS mape_pct,
                   count(*) FILTER (WHERE alert)::BIGINT AS eol_alerts,
                   count(*) FILTER (WHERE alert AND reached)::BIGINT AS alerts_reached,
                   count(*) FILTER (WHERE reached)::BIGINT AS reached_rated
            FROM p GROUP BY model ORDER BY model""", p)
        by_month = self._table(pairs + """
            SELECT strftime(date_trunc('month', as_of), '%Y-%m') AS month, model, count(*)::BIGINT AS forecasts,
                   round(avg(abs(forecast_30d - realised_30d)), 4) AS mae_cycles,
                   round(avg(forecast_30d - realised_30d), 4) AS bias_cycles
            FROM p GROUP BY ALL ORDER BY month, model""", p)
        pending = self._one(f"SELECT count(*) FROM forecasts f WHERE {w} AND f.as_of + 30 > "
                            "(SELECT max(date) FROM daily)", p)[0]
        return self._answer({"model": model, "since": since, "until": until},
                            {"by_model": by_model, "by_month": by_month}, {"not_yet_realised": pending},
                            ["realised = lifetime cycles of the same battery 30 days after as_of (daily table); "
                             "forecasts younger than 30 days or whose battery has no row that day are left out. "
                             "precision of end-of-life alerts = alerts_reached / eol_alerts."])

    def _current_components(self) -> str:
        return f"""
            WITH cur AS (
              SELECT * EXCLUDE (date) FROM compliance
              QUALIFY row_number() OVER (PARTITION BY vehicle_id, component ORDER BY scored_at DESC) = 1),
            c AS (
              SELECT *, list_filter(CASE WHEN coalesce(year_state, material_state, condition_state) IS NOT NULL
                THEN [CASE WHEN year_state = 'violates' THEN 'year' END,
                      CASE WHEN material_state = 'violates' THEN 'material' END,
                      CASE WHEN condition_state = 'violates' THEN 'condition' END]
                ELSE [CASE WHEN len(list_filter(why, lambda w: regexp_matches(lower(w), '{_YEAR_RE}'))) > 0 THEN 'year' END,
                      CASE WHEN len(list_filter(why, lambda w: regexp_matches(lower(w), '{_MATERIAL_RE}'))) > 0
                           THEN 'material' END,
                      CASE WHEN len(list_filter(why, lambda w: regexp_matches(lower(w), '{_CONDITION_RE}'))) > 0
                           THEN 'condition' END]
                END, lambda x: x IS NOT NULL) AS causes,
                coalesce(year_state, material_state, condition_state) IS NOT NULL AS from_states
              FROM cur)"""

    def compliance(self, part: str | None = None, cause: str | None = None, verdict: str | None = None,
                   limit: int = 1000) -> dict:
        self.as_of()
        base = self._current_components()
        where, p = ["verdict IN ('non_compliant', 'undetermined')"], []
        if verdict:
            where = ["verdict = ?"]
            p.append(verdict)
        if part:
            where.append("component = ?")
            p.append(part)
        if cause:
            if cause == "not_stated":
                where.append("verdict = 'undetermined'")
            else:
                where.append("list_contains(causes, ?)")
                p.append(cause)
        w = " AND ".join(where)
        by_part = self._table(base + f"""
            SELECT component, count(*) FILTER (WHERE verdict = 'non_compliant')::BIGINT AS non_compliant,
                   count(*) FILTER (WHERE verdict = 'undetermined')::BIGINT AS undetermined,
                   count(*) FILTER (WHERE verdict = 'compliant')::BIGINT AS compliant,
                   count(DISTINCT vehicle_id) FILTER (WHERE verdict <> 'compliant')::BIGINT AS vehicles_affected
            FROM c WHERE {"component = ?" if part else "1=1"} GROUP BY component
            ORDER BY non_compliant + undetermined DESC, component""", [part] if part else [])
        by_cause = self._table(base + f"""
            , u AS (SELECT vehicle_id, component, verdict, unnest(CASE WHEN verdict = 'undetermined'
                        THEN ['not_stated'] ELSE causes END) AS cause FROM c WHERE {w})
            SELECT cause, count(*)::BIGINT AS components, count(DISTINCT vehicle_id)::BIGINT AS vehicles
            FROM u GROUP BY cause ORDER BY components DESC""", p)
        items = self._table(base + f"""
            SELECT vehicle_id, vin, component, verdict, array_to_string(causes, ', ') AS causes,
                   array_to_string(why, ', ') AS why, array_to_string(missing, ', ') AS missing,
                   year_value, material_value, condition_value, model, scored_at,
                   CASE WHEN from_states THEN 'attribute states' ELSE 'why words' END AS cause_from
            FROM c WHERE {w} ORDER BY vehicle_id, component LIMIT ?""", [*p, limit])
        s = self._one(base + f"""
            SELECT count(*), count(*) FILTER (WHERE verdict = 'non_compliant'),
                   count(*) FILTER (WHERE verdict = 'undetermined'),
                   count(DISTINCT vehicle_id) FILTER (WHERE {w}) FROM c""", p)
        return self._answer({"part": part, "cause": cause, "verdict": verdict, "limit": limit},
                            {"by_part": by_part, "by_cause": by_cause, "components": items},
                            {"components": s[0], "non_compliant": s[1], "undetermined": s[2], "vehicles_affected": s[3]},
                            ["current verdict = the latest scoring of each (vehicle, component). Cause = the "
                             "attributes whose *_state is 'violates'; where those columns are null (older "
                             "scoring runs), the cause is read from the words in `why`."])

    def vehicles(self, q: str, limit: int = 20) -> dict:
        ref = self.as_of()
        t = self._table("""
            SELECT vehicle_id, max("at") AS last_status FROM (
              SELECT vehicle_id, "at" FROM status WHERE vehicle_id ILIKE ?
              UNION ALL SELECT vehicle_id, received_at FROM daily WHERE date >= ?::DATE - 14 AND vehicle_id ILIKE ?)
            GROUP BY vehicle_id ORDER BY vehicle_id LIMIT ?""", [f"%{q}%", ref["date"], f"%{q}%", limit])
        return self._answer({"q": q, "limit": limit}, {"vehicles": t})

    def vehicle(self, vid: str, days: int = 365) -> dict | None:
        ref = self.as_of()
        hist = self._table("""
            SELECT Date, Battery_ID, Daily_Cycles_Used, Lifetime_Cycles_Used, Battery_Rated_Cycles,
                   Number_Of_Trips, Daily_Trip_Duration, Min_Cranking_Voltage, Resting_Voltage,
                   Min_Temperature, Max_Temperature
            FROM daily WHERE vehicle_id = ? AND date > ?::DATE - ?::INTEGER ORDER BY Date""",
                           [vid, ref["date"], days])
        fc = self._rows("""
            SELECT battery_id, as_of, lifetime_cycles, rated_cycles, forecast_daily_cycles,
                   projected_lifetime_cycles_30d, days_to_rated, alert, fallback, history_days, model, scored_at
            FROM forecasts WHERE vehicle_id = ? ORDER BY as_of DESC, scored_at DESC LIMIT 1""", [vid])
        forecast = {"columns": ["day", "date", "forecast_daily_cycles", "projected_lifetime_cycles"], "rows": []}
        latest_fc = None
        if fc[1]:
            latest_fc = dict(zip(fc[0], fc[1][0]))
            life = latest_fc["lifetime_cycles"] or 0.0
            import datetime as dt
            for k, v in enumerate(latest_fc.pop("forecast_daily_cycles") or [], start=1):
                life += v
                forecast["rows"].append([k, latest_fc["as_of"] + dt.timedelta(days=k), v, round(life, 4)])
        alerts = self._table("""
            SELECT updated, change, alert_id, kind, severity, state, title, message, vehicle_date, revision,
                   acknowledged_by, explanation
            FROM alerts WHERE vehicle_id = ? ORDER BY updated, revision""", [vid])
        comps = self._table(self._current_components() + """
            SELECT component, verdict, array_to_string(why, ', ') AS why, array_to_string(causes, ', ') AS causes,
                   array_to_string(missing, ', ') AS missing, year_value, material_value, condition_value,
                   model, scored_at FROM c WHERE vehicle_id = ? ORDER BY verdict <> 'compliant' DESC, component""",
                            [vid])
        st = self._rows("""
            SELECT state, "at", outbox_rows, outbox_bytes, outbox_sent, dropped_telemetry, dropped_alerts,
                   downlink_rejected, models, received_at FROM status WHERE vehicle_id = ?
            ORDER BY "at" DESC LIMIT 1""", [vid])
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
        counts = {t: self._one(f"SELECT count(*) FROM {t}")[0] if ok else 0 for t, ok in self.present().items()}
        return {"as_of": ref["as_of"], "lake": self.uri, "tables": {t: {"present": ok, "rows": counts[t]}
                                                                     for t, ok in self.present().items()}}
