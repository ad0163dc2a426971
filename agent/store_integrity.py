"""State database integrity at start: a damaged state.db never crash-loops the agent.

Before agent.store opens `<state dir>/state.db`:

  1. the state directory must exist (created if needed) and be writable: a probe file is
     written and removed. If not: StateDirError, which `trey-agent run` reports as ONE line
     and exit code 3 (EXIT_STATE_DIR; the unit does not restart on it: nothing changes
     until someone fixes the directory).
  2. a write-ahead log left by a kill is checked frame by frame (SQLite's own checksums).
     SQLite silently stops replaying at the first bad frame, losing every commit after it;
     if frames of the current WAL generation follow a bad one, a copy of the database and
     its WAL is kept aside and the damage is reported (what SQLite could replay is used).
  3. the database must look like SQLite (header) and pass `PRAGMA quick_check`. If it does
     not (garbage, truncated, first page only, a damaged table page, state.db being a
     directory), it is moved aside as `state.db.corrupt-<UTC time>` (named in the log), a
     fresh database is created and every row still readable is copied over — table by
     table, rowid block by block, so one bad page loses only the rows on it: alerts, the
     outbox, the reader's checkpoint, counters and the closed days. When SQL cannot read
     even the schema (a cut file), closed days are read from the intact table pages.

The outcome is `StateStore.integrity` ({"status": "ok" | "recovered", ...}), shown in
/api/health (`state_db`), on the MQTT status topic and on the HMI page; the last recovery
is kept in the database (kv "store.last_recovery") so it stays visible after a restart.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import struct
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger("agent.store")

EXIT_STATE_DIR = 3
SQLITE_MAGIC = b"SQLite format 3\x00"
BLOCK = 256                  # rowids read per query while salvaging
MAX_EMPTY_BLOCKS = 64        # stop scanning a table after this many empty blocks past its end


class StateDirError(OSError):
    """The state directory cannot be created or written."""


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def check_state_dir(d: Path) -> None:
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateDirError(f"state directory {d} cannot be created: {exc.strerror or exc}") from None
    if not d.is_dir():
        raise StateDirError(f"state directory {d} is not a directory")
    probe = d / f".write-probe-{os.getpid()}"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"x")
        probe.unlink()
    except OSError as exc:
        raise StateDirError(f"state directory {d} is not writable: {exc.strerror or exc}") from None


# ----------------------------------------------------------------------------- WAL
def _wal_checksum(data: bytes, s0: int, s1: int, big: bool) -> tuple[int, int]:
    words = struct.unpack((">" if big else "<") + f"{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def check_wal(wal: Path) -> dict | None:
    """-> None if the WAL is absent, empty or intact; else {"valid_frames", "lost_frames"}:
    frames of the current generation SQLite will not replay because an earlier one is bad."""
    try:
        data = wal.read_bytes()
    except OSError:
        return None
    if len(data) < 32:
        return None
    magic, _version, page_size, _seq, salt1, salt2, c1, c2 = struct.unpack(">8I", data[:32])
    if magic not in (0x377F0682, 0x377F0683):
        return {"valid_frames": 0, "lost_frames": max(0, (len(data) - 32) // 4120), "reason": "bad WAL header"}
    big = magic == 0x377F0683
    frame = 24 + page_size
    n_frames = (len(data) - 32) // frame if page_size else 0
    s = _wal_checksum(data[:24], 0, 0, big)
    if s != (c1, c2):
        return {"valid_frames": 0, "lost_frames": n_frames, "reason": "WAL header checksum"} if n_frames else None
    valid = 0
    for i in range(n_frames):
        off = 32 + i * frame
        hdr = data[off:off + 24]
        _pg, _commit, fs1, fs2, fc1, fc2 = struct.unpack(">6I", hdr)
        if (fs1, fs2) != (salt1, salt2):
            break
        s = _wal_checksum(hdr[:8] + data[off + 24:off + frame], s[0], s[1], big)
        if s != (fc1, fc2):
            break
        valid += 1
    # After the break, frames carrying this generation's salts were written after it: lost.
    lost = 0
    for i in range(valid + 1, n_frames):
        off = 32 + i * frame
        if struct.unpack(">2I", data[off + 8:off + 16]) == (salt1, salt2):
            lost += 1
    if valid < n_frames and lost:
        return {"valid_frames": valid, "lost_frames": lost + 1, "reason": f"bad frame {valid + 1}"}
    return None


# ----------------------------------------------------------------------------- database
def _problem(path: Path) -> str | None:
    """Why state.db cannot be used as it is, or None."""
    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_file():
        return "state.db is not a regular file"
    try:
        with open(path, "rb") as fh:
            head = fh.read(100)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    if not head:
        return None                               # an empty file is an empty database
    if not head.startswith(SQLITE_MAGIC) or len(head) < 100:
        return "not an SQLite database (bad header)"
    try:
        conn = sqlite3.connect(path, timeout=5)
        try:
            rows = conn.execute("PRAGMA quick_check(20)").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return f"unreadable: {exc}"
    if [r[0] for r in rows] != ["ok"]:
        return "integrity check failed: " + "; ".join(str(r[0]) for r in rows[:3])[:300]
    return None


def prepare(path: Path) -> dict:
    """Run checks 2 and 3 on `path` (module docstring). Returns the integrity report; a
    report with "salvage_from" means the caller must salvage() into the fresh database."""
    report: dict = {"status": "ok"}
    wal = path.with_name(path.name + "-wal")
    damage = check_wal(wal) if path.is_file() else None
    if damage:
        aside = path.with_name(f"{path.name}.wal-damaged-{_stamp()}")
        aside.mkdir(exist_ok=True)
        for f in (path, wal):
            shutil.copy2(f, aside / f.name)
        log.error("state database: write-ahead log damaged (%s): %d committed frame(s) after it are lost; "
                  "copies kept in %s", damage["reason"], damage["lost_frames"], aside)
        report = {"status": "recovered", "reason": f"write-ahead log damaged ({damage['reason']})",
                  "kept_aside": str(aside), "wal_frames_lost": damage["lost_frames"], "at": _now()}
    problem = _problem(path)
    if problem is None:
        return report
    aside = path.with_name(f"{path.name}.corrupt-{_stamp()}")
    path.rename(aside)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(aside.with_name(aside.name + suffix))
    log.error("state database %s is damaged (%s): moved aside to %s; recovering what can be read",
              path, problem, aside)
    return {"status": "recovered", "reason": problem, "kept_aside": str(aside), "salvage_from": str(aside),
            "at": _now(), **({"wal_frames_lost": report["wal_frames_lost"]} if "wal_frames_lost" in report else {})}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def salvage(src: str | Path, dst: sqlite3.Connection) -> tuple[dict, dict]:
    """Copy every readable row of every table of `src` into `dst` (same schema, created
    here). -> ({table: rows recovered}, {table: rowid blocks unreadable})."""
    recovered: dict[str, int] = {}
    unreadable: dict[str, int] = {}
    src = Path(src)
    if not src.is_file():
        return recovered, unreadable
    try:
        s = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=5)
    except sqlite3.DatabaseError:
        return recovered, {"*": 1}
    try:
        try:
            schema = s.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
        except sqlite3.DatabaseError:
            # The schema itself is unreadable (e.g. the file was cut): SQL sees nothing, but
            # the closed days may still sit in intact pages. Rows of `daily` are written once
            # and never updated, so a stale copy cannot bring back an old state.
            n = scan_daily_pages(src, dst)
            return ({"daily": n} if n else {}), {"sqlite_master": 1}
        for typ, name, sql in schema:
            if typ != "table" or name.startswith("sqlite_"):
                continue
            try:
                dst.execute(sql.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1))
                cols = [r[1] for r in s.execute(f'PRAGMA table_info("{name}")')]
            except sqlite3.DatabaseError:
                unreadable[name] = unreadable.get(name, 0) + 1
                continue
            n, bad = _copy_table(s, dst, name, cols)
            recovered[name] = n
            if bad:
                unreadable[name] = bad
        for typ, name, sql in schema:
            if typ == "index" and not name.startswith("sqlite_"):
                try:
                    dst.execute(sql.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1)
                                .replace("CREATE UNIQUE INDEX", "CREATE UNIQUE INDEX IF NOT EXISTS", 1))
                except sqlite3.DatabaseError:
                    pass
    finally:
        s.close()
    return recovered, unreadable


def _copy_table(s, dst, name: str, cols: list[str]) -> tuple[int, int]:
    collist = ", ".join(f'"{c}"' for c in cols)
    insert = f'INSERT OR IGNORE INTO "{name}" (rowid, {collist}) VALUES ({", ".join("?" * (len(cols) + 1))})'
    select = f'SELECT rowid, {collist} FROM "{name}" WHERE rowid BETWEEN ? AND ?'
    try:
        top = s.execute(f'SELECT max(rowid) FROM "{name}"').fetchone()[0]
    except sqlite3.DatabaseError:
        top = None
    try:
        lo = s.execute(f'SELECT min(rowid) FROM "{name}"').fetchone()[0] or 0
    except sqlite3.DatabaseError:
        lo = 0
    n = bad = empty = 0
    while True:
        if top is not None and lo > top:
            break
        if top is None and empty >= MAX_EMPTY_BLOCKS:
            break
        try:
            rows = s.execute(select, (lo, lo + BLOCK - 1)).fetchall()
        except sqlite3.DatabaseError:
            rows = []
            for rid in range(lo, lo + BLOCK):     # the block holds a bad page: row by row
                try:
                    rows += s.execute(select, (rid, rid)).fetchall()
                except sqlite3.DatabaseError:
                    bad += 1
        if rows:
            dst.executemany(insert, rows)
            n += len(rows)
            empty = 0
        else:
            empty += 1
        lo += BLOCK
    return n, bad


# ----------------------------------------------------------------------------- raw pages
def _varint(b: bytes, i: int) -> tuple[int, int]:
    v = 0
    for k in range(9):
        if i >= len(b):
            raise IndexError
        c = b[i]
        i += 1
        if k == 8:
            return (v << 8) | c, i
        v = (v << 7) | (c & 0x7F)
        if c < 0x80:
            return v, i
    return v, i


def _value(t: int, b: bytes, i: int):
    if t == 0:
        return None, i
    if 1 <= t <= 6:
        n = (1, 2, 3, 4, 6, 8)[t - 1]
        return int.from_bytes(b[i:i + n], "big", signed=True), i + n
    if t == 7:
        return struct.unpack(">d", b[i:i + 8])[0], i + 8
    if t in (8, 9):
        return t - 8, i
    if t >= 12:
        n = (t - 12) // 2
        raw = b[i:i + n]
        if len(raw) != n:
            raise IndexError
        return (raw if t % 2 == 0 else raw.decode("utf-8")), i + n
    raise ValueError("reserved serial type")


def _leaf_records(page: bytes, base: int, usable: int):
    """(rowid, values) of every cell of a table-leaf page that fits in the page."""
    if page[base] != 0x0D:
        return
    ncells = int.from_bytes(page[base + 3:base + 5], "big")
    for k in range(ncells):
        try:
            ptr = int.from_bytes(page[base + 8 + 2 * k:base + 10 + 2 * k], "big")
            size, i = _varint(page, ptr)
            rowid, i = _varint(page, i)
            if size > usable - 35 or i + size > len(page):
                continue                        # spills into overflow pages: skipped
            rec = page[i:i + size]
            hsize, j = _varint(rec, 0)
            types = []
            while j < hsize:
                t, j = _varint(rec, j)
                types.append(t)
            vals, pos = [], hsize
            for t in types:
                v, pos = _value(t, rec, pos)
                vals.append(v)
            yield rowid, vals
        except (IndexError, ValueError, UnicodeDecodeError, struct.error):
            continue


def scan_daily_pages(src: Path, dst: sqlite3.Connection) -> int:
    """Closed-day rows found in intact table-leaf pages of a database SQL cannot read."""
    import re

    from agent.schema import DAILY_COLUMNS
    try:
        data = Path(src).read_bytes()
    except OSError:
        return 0
    if len(data) < 100 or not data.startswith(SQLITE_MAGIC):
        return 0
    ps = int.from_bytes(data[16:18], "big")
    ps = 65536 if ps == 1 else ps
    if ps < 512 or ps & (ps - 1):
        return 0
    usable = ps - data[20]
    cols = ", ".join(f'"{c}"' for c in DAILY_COLUMNS)
    other = ", ".join(f'"{c}"' for c in DAILY_COLUMNS if c not in ("Date", "Battery_ID"))
    dst.execute(f'CREATE TABLE IF NOT EXISTS daily ("Date" TEXT NOT NULL, "Battery_ID" NOT NULL, {other}, '
                'PRIMARY KEY ("Battery_ID", "Date"))')
    insert = f"INSERT OR IGNORE INTO daily ({cols}) VALUES ({', '.join('?' * len(DAILY_COLUMNS))})"
    day = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
    n = 0
    for p in range(len(data) // ps):
        page = data[p * ps:(p + 1) * ps]
        for _rowid, vals in _leaf_records(page, 100 if p == 0 else 0, usable):
            if (len(vals) == len(DAILY_COLUMNS) and isinstance(vals[0], str) and day.fullmatch(vals[0])
                    and vals[1] is not None and not isinstance(vals[1], bytes)):
                n += dst.execute(insert, vals).rowcount
    return n
