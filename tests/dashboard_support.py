"""Shared by the dashboard tests: a small generated lake, the dashboard served on a free port,
plain HTTP GETs, and the lake read back with pyarrow (the independent side of each check)."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow.dataset as ds

from export.dashboard.demo_lake import generate
from export.dashboard.server import Dashboard, make_server

SMALL = {"vehicles": 160, "days": 200, "seed": 3}


def small_lake(path: Path) -> Path:
    generate(path, **SMALL)
    return path


@contextlib.contextmanager
def serving(lake, token=None, basic=None):
    app = Dashboard(str(lake), token=token, basic=basic)
    srv = make_server(app, "127.0.0.1", 0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", app
    finally:
        srv.shutdown()
        srv.server_close()
        app.close()


def get(url: str, headers: dict | None = None, basic: str | None = None):
    """-> (status, headers, body bytes); never raises on HTTP errors."""
    h = dict(headers or {})
    if basic:
        h["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
    req = urllib.request.Request(url, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get_json(url: str, **kw):
    status, _, body = get(url, **kw)
    return status, json.loads(body)


def table(lake, name: str):
    """A lake table as a list of dicts (pyarrow, hive partitions; the dashboard is not involved)."""
    return ds.dataset(Path(lake) / name, format="parquet", partitioning="hive").to_table().to_pylist()
