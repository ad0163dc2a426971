"""trey-export ingest [run] --broker HOST:PORT --lake URI: one stateless cloud ingest worker writing
Parquet files to LAKE/landing/ (export.ingest); `trey-export lake compact` builds the tables."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading

log = logging.getLogger("export.ingest")


def configure(p) -> None:
    p.add_argument("--broker", required=True, help="MQTT broker HOST:PORT")
    p.add_argument("--lake", "--out", dest="lake", required=True,
                   help="lake root (path or URI; shared by all workers of the group)")
    p.add_argument("--worker-id", default="1",
                   help="stable id of this worker (distinct per worker; keeps its broker session across restarts)")
    p.add_argument("--group", default="ingest", help="shared-subscription group ($share/GROUP/...)")
    p.add_argument("--batch", type=int, default=500, help="max messages per durable write")
    p.add_argument("--flush-ms", type=int, default=200, help="max wait before writing a partial batch")
    p.add_argument("--ca-file", default="", help="TLS: CA certificate")
    p.add_argument("--cert-file", default="", help="TLS: client certificate (mutual TLS)")
    p.add_argument("--key-file", default="", help="TLS: client key")
    p.add_argument("--username", default="")
    p.add_argument("--password-file", default="")


def main(args) -> int:
    from agent.config import ConfigError, parse_listen
    from export.ingest import IngestWorker
    try:
        host, port = parse_listen(args.broker, "--broker")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    password = ""
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as fh:
            password = fh.read().rstrip("\r\n")
    try:
        worker = IngestWorker(host, port, args.lake, worker_id=args.worker_id, group=args.group,
                              batch_max=args.batch, flush_s=args.flush_ms / 1000,
                              tls_ca=args.ca_file, tls_cert=args.cert_file, tls_key=args.key_file,
                              username=args.username, password=password)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: done.set())
    worker.start()
    log.info("ingest worker %s: %s -> %s", args.worker_id, args.broker, args.lake)
    while not done.wait(1.0):
        if worker._thread is not None and not worker._thread.is_alive():
            break
    worker.stop()
    print(json.dumps(worker.stats()), flush=True)
    return 0
