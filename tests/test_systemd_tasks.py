"""The unit's TasksMax is enough (issue #10 "Stated limits"): a real `trey-agent run` with
MQTT, the HMI held by 200 idle + 50 slow connections, 8 event streams, 8 concurrent API
clients and a downlink flood never uses more than half of TasksMax threads."""

from __future__ import annotations

import random
import socket
import threading
import time

import paho.mqtt.client as mqtt

from agent import topics as T
from tests.conftest import ROOT, wait_until
from tests.daemon_support import agent_config, hmi_port, http, start_agent_process, stop_process, wait_ready, write_spec


def _unit_tasks_max() -> int:
    for line in (ROOT / "systemd" / "trey-agent.service").read_text().splitlines():
        if line.startswith("TasksMax="):
            return int(line.split("=", 1)[1])
    raise AssertionError("no TasksMax= in the unit")


def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return int(next(line.split()[1] for line in fh if line.startswith("Threads:")))


def test_tasks_max_is_enough_under_load(tmp_path, broker):
    tasks_max = _unit_tasks_max()
    spec = write_spec(tmp_path / "components.jsonl")
    cfg = agent_config(tmp_path, spec=spec, extra=f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n')
    log = tmp_path / "agent.log"
    proc = start_agent_process(cfg, log_path=log)
    port = hmi_port(cfg)
    base = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    peak = [0]
    held: list[socket.socket] = []
    try:
        wait_ready(port, proc, log)
        wait_until(lambda: http("GET", base + "/api/health")[1]["mqtt"].get("downlink_live"), 15, what="MQTT")

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], _threads(proc.pid))
                time.sleep(0.02)

        def api_client():
            while not stop.is_set():
                for p in ("/api/health", "/api/alerts", "/api/battery", "/api/components", "/"):
                    http("GET", base + p)

        workers = [threading.Thread(target=sample, daemon=True)] + [
            threading.Thread(target=api_client, daemon=True) for _ in range(8)]
        for w in workers:
            w.start()
        for i in range(250):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if i >= 200:
                s.sendall(b"GET / HTTP/1.1\r\n")
            held.append(s)
        for _ in range(8):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            held.append(s)
        cloud = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="flood", protocol=mqtt.MQTTv5)
        cloud.connect(broker.host, broker.port)
        cloud.loop_start()
        rng = random.Random(3)
        for i in range(600):
            doc = {"vin": f"F{i:06d}", "components": [{"component": "alternator", "note": "steel 1985 fair"}]}
            cloud.publish(T.components_topic("TEST-CAR-1"), T.encode(T.components_message("TEST-CAR-1", doc)), qos=1)
            cloud.publish(T.ack_topic("TEST-CAR-1"), rng.randbytes(30), qos=1)
        time.sleep(3)
        cloud.loop_stop()
        cloud.disconnect()
        assert http("GET", base + "/api/health")[0] == 200
    finally:
        stop.set()
        for s in held:
            s.close()
        rc, _ = stop_process(proc)
    assert rc == 0, log.read_text()[-2000:]
    print(f"\npeak threads {peak[0]} (TasksMax={tasks_max})")
    assert 0 < peak[0] <= tasks_max // 2, (peak[0], tasks_max)
