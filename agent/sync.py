"""MQTT sync: store-and-forward uplink from the outbox, validated downlink.

API (the daemon wires this when `[mqtt]` is set):

    sync = Sync(cfg, store, alerts=None, *,
                on_components=fn(doc) -> int,        # {"vin", "components": [...]} -> notes applied
                on_ack=fn(alert_id, by) -> alert,     # KeyError = unknown alert (default: alerts.acknowledge)
                on_bundle=fn(slot, files, release) -> bool,  # verified bundle files {name: bytes}; True = swapped
                on_promote=fn(slot, release) -> bool, # a signed promotion of the slot's shadow model
                shadow_sha=fn(slot) -> str | None,    # tar sha256 of the slot's shadow bundle
                model_info=fn() -> dict,              # per-slot shadow evaluation (status "lifecycle")
                trust=None,                           # agent.release_metadata.TrustStore (default: state dir)
                trusted_keys=None,                    # default cfg.models.trusted_keys or the dev key
                backoff_min=None, backoff_max=None,   # reconnect delays (s); default mqtt.reconnect_*_ms
                status_interval=30.0)
    sync.start(); sync.status() -> dict; sync.stop(timeout=3.0)

The constructor creates the outbox tables and registers `store.add_row_hook` and
`alerts.add_change_hook`: every closed daily row / alert change is enqueued inside the
transaction that stores it (agent.outbox). Register BEFORE the pipeline produces rows.

Uplink: one network thread owns the paho client (MQTT 5, v2 callback API, QoS 1,
clean_start=False with a session expiry so downlink queued while the car is off arrives
later). Oldest-first drain with at most `mqtt.max_inflight` messages in flight; a row is
deleted only when its PUBACK arrives. paho re-sends in-flight messages (same mid) after a
reconnect, and the mid->row map survives reconnects, so a PUBACK always finds its row; after
a restart everything still in the outbox is sent again (the cloud dedups by msg_id).
Reconnect: exponential backoff with "equal jitter" (d = min(max, min*2^n); sleep d/2..d),
reset on CONNACK. A PUBACK with reason "No matching subscribers" (MQTT 5) keeps the row and
pauses the drain (0.25 s doubling to 10 s): the message only counts as delivered when the
broker had a subscriber (the cloud ingest) for it. Retained status (online + counters) on connect, on model outcome and every
`status_interval`; last will = retained offline status; clean stop publishes offline.

Downlink: topics of agent.topics, every payload validated there (size, JSON, schema, types,
vehicle id). Malformed -> dropped, counted per reason in status()["downlink_rejected"],
logged once per reason. Valid messages are handled on a separate worker thread through a
bounded queue, so slow classification or a flood never blocks the network loop. Model
announcements and the root chain: agent.model_downlink (signed release metadata verified
before any bundle byte is decoded; chunks subscribed per slot only after that). Outcome per
slot in status()["models"] and on the status topic.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from datetime import datetime, timezone

from agent import outbox
from agent import topics as T

log = logging.getLogger("agent.sync")

SESSION_EXPIRY_S = 7 * 24 * 3600
DOWNLINK_QUEUE = 256
PUMP_SAFETY_S = 2.0      # re-read the outbox at least this often while connected
NO_MATCHING_SUBSCRIBERS = 0x10   # MQTT 5 PUBACK reason: accepted, but no subscriber got it
HOLD_MIN_S, HOLD_MAX_S = 0.25, 10.0
PACKET_OVERHEAD = 64 * 1024      # fixed + variable header (topic, properties) above the payload
RATE_LIMITED = ("components", "ack")   # model announcements/chunks are bounded in bytes instead


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class Sync:
    def __init__(self, config, store, alerts=None, *, on_components=None, on_ack=None, on_bundle=None,
                 on_promote=None, shadow_sha=None, model_info=None, trust=None, trusted_keys=None, backoff_min: float | None = None, backoff_max: float | None = None,
                 status_interval: float = 30.0):
        if config.mqtt is None:
            raise ValueError("Sync needs an [mqtt] section")
        self.cfg = config
        self.m = config.mqtt
        self.vehicle_id = config.vehicle.id
        self.store = store
        self.alerts = alerts
        self.on_components = on_components
        self.on_ack = on_ack or (alerts.acknowledge if alerts is not None else None)
        self.on_bundle = on_bundle
        self._trusted_keys = trusted_keys if trusted_keys is not None else (list(config.models.trusted_keys) or None)
        self.backoff_min = float(backoff_min if backoff_min is not None else self.m.reconnect_min_ms / 1000)
        self.backoff_max = float(backoff_max if backoff_max is not None else self.m.reconnect_max_ms / 1000)
        self.status_interval = float(status_interval)
        self.window = int(self.m.max_inflight)

        self._inflight: dict[int, int] = {}        # mid -> outbox row id (network thread writes)
        self._inflight_rows: frozenset = frozenset()  # snapshot read by hooks in other threads
        self._acked: list[int] = []
        self._dirty_at = time.monotonic()          # last enqueue (hook) time
        self._stop = threading.Event()
        self._connected = False
        # True once the broker granted the downlink subscription (SUBACK): only then can an ack or
        # components document sent by the cloud reach this agent; "connected" alone (CONNACK) is earlier.
        self._downlink_live = False
        self._downlink_mid = None
        self._state = "stopped"
        self._attempt = 0
        self.connects = 0
        self.last_error = ""
        self.broker_rejected = 0
        self.rejected: dict[str, int] = {}
        self.applied: dict[str, int] = {"components": 0, "ack": 0, "model": 0}
        self.model_info = model_info
        self._sub_requests: list = []              # (subscribe?, topic filter) for the network thread
        if trust is None:
            from pathlib import Path

            from agent.release_metadata import TrustStore
            trust = TrustStore(Path(config.state.dir) / "trust", getattr(config.models, "root", "") or None)
        from agent.model_downlink import ModelDownlink
        self.releases = ModelDownlink(
            trust, self.vehicle_id, ("battery", "compliance"), on_bundle=self._bundle_handler,
            on_promote=on_promote, shadow_sha=shadow_sha, reject=self._reject, trusted_keys=self._trusted_keys,
            subscribe=lambda slot: self._sub_requests.append((True, T.model_chunks_filter(slot))),
            unsubscribe=lambda slot: self._sub_requests.append((False, T.model_chunks_filter(slot))),
            changed=self._models_changed)
        self._downq: queue.Queue = queue.Queue(DOWNLINK_QUEUE)
        self._buckets: dict[str, tuple[float, float]] = {}   # kind -> (tokens, monotonic time)
        self._threads: list[threading.Thread] = []
        self._client = None
        self._status_due = 0.0
        self._status_dirty = True
        self._counters_cache: dict = {}
        self._last_pump = 0.0
        self._last_status = 0.0
        self._more = False
        self._refused = False
        self._hold_until = 0.0
        self._hold = HOLD_MIN_S
        self.no_subscribers = 0

        with store.transaction() as conn:
            outbox.create(conn)
        if hasattr(store, "add_row_hook"):
            store.add_row_hook(self._row_hook)
        if alerts is not None:
            alerts.add_change_hook(self._alert_hook)

    # ------------------------------------------------------------------ hooks (caller's transaction)
    def _row_hook(self, conn, row: dict) -> None:
        msg = T.daily_payload(self.vehicle_id, row)
        outbox.enqueue(conn, T.KIND_TELEMETRY, T.daily_topic(self.vehicle_id), msg,
                       self.m.outbox_max_rows, self.m.outbox_max_bytes, self._inflight_rows)
        self._dirty_at = time.monotonic()

    def _alert_hook(self, conn, alert: dict) -> None:
        msg = T.alert_payload(self.vehicle_id, alert)
        outbox.enqueue(conn, T.KIND_ALERT, T.alerts_topic(self.vehicle_id), msg,
                       self.m.outbox_max_rows, self.m.outbox_max_bytes, self._inflight_rows)
        self._dirty_at = time.monotonic()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "Sync":
        self._stop.clear()
        self._client = self._make_client()
        self._state = "connecting"
        for name, target in (("mqtt-net", self._net_loop), ("mqtt-downlink", self._downlink_loop)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout: float = 3.0) -> None:
        """Publish the offline status, disconnect, join; bounded by `timeout` in total (the
        daemon must exit within 5 s of SIGTERM)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._threads = []
        self._state = "stopped"

    def status(self) -> dict:
        try:
            with self.store.transaction() as conn:
                self._counters_cache = outbox.counters(conn)
        except Exception:   # status must never raise (HMI health calls it)
            log.debug("outbox counters unavailable", exc_info=True)
        c = self._counters_cache
        return {"state": self._state, "connected": self._connected, "downlink_live": self._downlink_live,
                "broker": f"{self.m.host}:{self.m.port}", "connects": self.connects,
                "last_error": self.last_error, "inflight": len(self._inflight),
                "outbox": {k: c.get(k, 0) for k in ("rows", "bytes", "enqueued", "sent",
                                                     "dropped_telemetry", "dropped_alerts")},
                "broker_rejected": self.broker_rejected, "no_subscribers": self.no_subscribers,
                "downlink_rejected": dict(self.rejected), "downlink_applied": dict(self.applied),
                "models": {k: dict(v) for k, v in self.releases.models.items()},
                "lifecycle": self._lifecycle()}

    def _lifecycle(self) -> dict:
        try:
            return self.model_info() if self.model_info is not None else {}
        except Exception:   # status must never raise
            log.debug("model lifecycle info unavailable", exc_info=True)
            return {}

    @property
    def models(self) -> dict:
        return self.releases.models

    def wait_drained(self, timeout: float = 30.0) -> bool:
        """Block until the outbox is empty (tests, benchmarks, clean shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.store.transaction() as conn:
                if outbox.counters(conn)["rows"] == 0:
                    return True
            time.sleep(0.05)
        return False

    # ------------------------------------------------------------------ client
    def _make_client(self):
        import paho.mqtt.client as mqtt
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.m.client_id or self.vehicle_id,
                        protocol=mqtt.MQTTv5)
        c.max_inflight_messages_set(self.window)
        c.connect_timeout = 2.0             # an unreachable broker must not stall stop() (SIGTERM budget 5 s)
        c.max_queued_messages_set(0)
        if self.m.username:
            password = None
            if self.m.password_file:
                with open(self.m.password_file, encoding="utf-8") as fh:
                    password = fh.read().rstrip("\r\n")
            c.username_pw_set(self.m.username, password)
        if self.m.tls:
            c.tls_set(ca_certs=self.m.ca_file or None, certfile=self.m.cert_file or None,
                      keyfile=self.m.key_file or None)
        offline = T.status_payload(self.vehicle_id, "offline", _now(), reason="connection lost")
        c.will_set(T.status_topic(self.vehicle_id), T.encode(offline), qos=T.QOS, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        return c

    def _backoff(self) -> None:
        d = min(self.backoff_max, self.backoff_min * (2 ** min(self._attempt, 16)))
        self._attempt += 1
        self._stop.wait(d / 2 + random.uniform(0, d / 2))

    def _net_loop(self) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        # The broker must not deliver anything bigger than we accept: paho reads a whole
        # message into memory before on_message (128 MB on .../components = 481 MB RSS).
        props.MaximumPacketSize = self.m.max_payload_bytes + PACKET_OVERHEAD
        c = self._client
        while not self._stop.is_set():
            self._state = "connecting"
            try:
                c.connect(self.m.host, self.m.port, self.m.keepalive, clean_start=False, properties=props)
            except Exception as exc:   # refused, DNS, TLS handshake (no/bad client cert)...
                self._note_error(f"connect: {exc}")
                self._backoff()
                continue
            connects_before = self.connects
            self._refused = False
            while not self._stop.is_set():
                rc = c.loop(timeout=0.05)
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    # e.g. TLS 1.3: a missing client cert is refused after the handshake
                    if self.connects == connects_before and not self._refused:
                        self._note_error(f"connection closed before CONNACK: {mqtt.error_string(rc)}")
                    break
                if self._connected:
                    while self._sub_requests:
                        sub, flt = self._sub_requests.pop(0)
                        c.subscribe(flt, T.QOS) if sub else c.unsubscribe(flt)
                    self._flush_acked()
                    self._pump(c)
                    self._maybe_status(c)
            if self._stop.is_set():
                break                       # still connected: _shutdown_client says goodbye
            self._connected = self._downlink_live = False
            self._flush_acked()
            self._state = "disconnected"
            self._backoff()
        self._shutdown_client(c)

    def _shutdown_client(self, c) -> None:
        import paho.mqtt.client as mqtt
        if self._connected:
            try:
                info = c.publish(T.status_topic(self.vehicle_id), T.encode(self._status_msg("offline")),
                                 qos=T.QOS, retain=True)
                deadline = time.monotonic() + 1.0
                while not info.is_published() and time.monotonic() < deadline:
                    if c.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                        break
                self._flush_acked()
                c.disconnect()
                c.loop(timeout=0.05)
            except Exception:
                log.debug("clean disconnect failed", exc_info=True)
        self._connected = self._downlink_live = False
        self._flush_acked()

    def _note_error(self, msg: str) -> None:
        if msg != self.last_error:
            log.warning("mqtt %s:%s %s (retrying with backoff)", self.m.host, self.m.port, msg)
        self.last_error = msg

    # ------------------------------------------------------------------ paho callbacks (network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refused = True
            self._note_error(f"refused: {reason_code}")
            return
        self._connected = True
        self._state = "connected"
        self._attempt = 0
        self.connects += 1
        self.last_error = ""
        log.info("mqtt connected to %s:%s (session present: %s, %d in flight)", self.m.host, self.m.port,
                 flags.session_present, len(self._inflight))
        # A persistent session may still hold chunk subscriptions (an older agent's wildcard,
        # or a download cut by the disconnect): drop them; a pending download re-subscribes
        # when its retained announcement comes again.
        client.unsubscribe([T.MODEL_CHUNKS_FILTER] + [T.model_chunks_filter(s) for s in self.releases.slots])
        self._downlink_live = False
        _, self._downlink_mid = client.subscribe([(f, T.QOS) for f in T.downlink_filters(self.vehicle_id)])
        self._status_due = 0.0
        self._dirty_at = time.monotonic()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if mid != self._downlink_mid:
            return                                  # a model-chunk subscription
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:                                 # e.g. a broker ACL denying the vehicle's topics
            self._note_error(f"downlink subscription refused: {', '.join(refused)}")
        self._downlink_live = not refused

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected:
            log.warning("mqtt disconnected: %s", reason_code)
        self._connected = False
        self._downlink_live = False

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        rid = self._inflight.pop(mid, None)
        if rid is None:
            return                       # a status message
        if reason_code.value == NO_MATCHING_SUBSCRIBERS:
            # MQTT 5: the broker took it but nobody (no ingest worker) will receive it — e.g.
            # the cloud side has not re-subscribed yet after a broker restart. Keep the row,
            # pause the drain and retry from the oldest: delivery to the cloud is the point.
            self.no_subscribers += 1
            now = time.monotonic()
            if now >= self._hold_until:      # one back-off step per episode, not per message
                self._hold_until = now + self._hold
                self._hold = min(self._hold * 2, HOLD_MAX_S)
            return
        self._hold = HOLD_MIN_S
        if reason_code.is_failure:      # the broker will never take it (e.g. not authorized)
            self.broker_rejected += 1
            log.error("broker rejected outbox message %d: %s (dropped)", rid, reason_code)
        self._acked.append(rid)

    def _rate_ok(self, topic: str) -> bool:
        """Token bucket per downlink kind (mqtt.downlink_rate_per_s, burst mqtt.downlink_burst)."""
        kind = T.parse_topic(topic)
        kind = kind[0] if kind else None
        if kind not in RATE_LIMITED:
            return True
        now = time.monotonic()
        tokens, at = self._buckets.get(kind, (float(self.m.downlink_burst), now))
        tokens = min(float(self.m.downlink_burst), tokens + (now - at) * self.m.downlink_rate_per_s)
        if tokens < 1.0:
            self._buckets[kind] = (tokens, now)
            self._reject(f"{kind}:rate_limited", f"over {self.m.downlink_rate_per_s}/s")
            return False
        self._buckets[kind] = (tokens - 1.0, now)
        return True

    def _on_message(self, client, userdata, message) -> None:
        if not self._rate_ok(message.topic):
            return
        try:
            kind, body = T.decode_downlink(message.topic, message.payload, self.vehicle_id,
                                           self.m.max_payload_bytes)
        except T.PayloadError as exc:
            self._reject(exc.reason, exc.detail)
            return
        except Exception as exc:       # never let a payload kill the network loop
            self._reject("internal", repr(exc)[:120])
            return
        if kind == "model":
            body["retained"] = bool(message.retain)    # a re-delivery on (re)subscribe, not a re-send
        try:
            self._downq.put_nowait((kind, body))
        except queue.Full:
            self._reject(f"{kind}:overloaded", "downlink queue full")

    def _reject(self, reason: str, detail: str = "") -> None:
        n = self.rejected.get(reason, 0)
        if n == 0:
            log.warning("downlink message rejected (%s) %s — further ones counted silently", reason, detail)
        self.rejected[reason] = n + 1
        self._status_dirty = True

    # ------------------------------------------------------------------ uplink
    def _flush_acked(self) -> None:
        if not self._acked:
            return
        ids, self._acked = self._acked, []
        try:
            with self.store.transaction() as conn:
                outbox.delete(conn, ids)
        except Exception:
            log.exception("outbox delete failed; rows will be re-sent (deduplicated by msg_id)")
        self._inflight_rows = frozenset(self._inflight.values())

    def _pump(self, c) -> None:
        free = self.window - len(self._inflight)
        now = time.monotonic()
        if now < self._hold_until:
            return
        # Read the outbox only when something may be there: a recent enqueue (its
        # transaction may commit just after the hook ran), or the periodic safety net.
        if free <= 0:
            return
        if not (self._more or now - self._dirty_at <= 1.0 or now - self._last_pump >= PUMP_SAFETY_S):
            return
        self._last_pump = now
        with self.store.transaction() as conn:
            rows = outbox.pending(conn, 0, free, exclude=self._inflight.values())
            # Protect them from the bound's drops before the transaction ends: hooks run in
            # store transactions, so none can drop a row between this read and its publish.
            self._inflight_rows = frozenset(self._inflight.values()) | {r[0] for r in rows}
        self._more = len(rows) >= free
        for rid, topic, payload in rows:
            info = c.publish(topic, payload, qos=T.QOS)
            if info.rc not in (0, 4):        # 4 = NO_CONN: paho keeps it and sends it on reconnect
                self._more = False
                break
            self._inflight[info.mid] = rid
            if info.rc:
                self._more = False
                break
        self._inflight_rows = frozenset(self._inflight.values())

    # ------------------------------------------------------------------ status
    def _status_msg(self, state: str) -> dict:
        st = self.status()
        return T.status_payload(self.vehicle_id, state, _now(), outbox=st["outbox"],
                                downlink_rejected=st["downlink_rejected"], models=st["models"],
                                lifecycle=st["lifecycle"],
                                broker_rejected=st["broker_rejected"],
                                state_db=getattr(self.store, "integrity", {"status": "ok"}))

    def _maybe_status(self, c) -> None:
        now = time.monotonic()
        due = self._status_due
        if self._status_dirty:               # new rejections: report, at most once a second
            due = min(due, self._last_status + 1.0)
        if now < due:
            return
        self._last_status = now
        self._status_due = now + self.status_interval
        self._status_dirty = False
        c.publish(T.status_topic(self.vehicle_id), T.encode(self._status_msg("online")), qos=T.QOS, retain=True)

    # ------------------------------------------------------------------ downlink (worker thread)
    def _downlink_loop(self) -> None:
        while not self._stop.is_set():
            try:
                kind, body = self._downq.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                getattr(self, f"_apply_{kind}")(body)
            except Exception as exc:
                self._reject(f"{kind}:handler_error", repr(exc)[:160])

    def _apply_components(self, doc: dict) -> None:
        if self.on_components is None:
            self._reject("components:no_handler")
            return
        n = self.on_components(doc)
        if not n:
            self._reject("components:not_applied", f"vin {doc['vin']}")
            return
        self.applied["components"] += 1

    def _apply_ack(self, body: dict) -> None:
        if self.on_ack is None:
            self._reject("ack:no_handler")
            return
        try:
            self.on_ack(body["alert_id"], body["by"])
        except KeyError:
            self._reject("ack:unknown_alert", str(body["alert_id"]))
            return
        except ValueError as exc:      # AlertError (cleared alert) is a ValueError
            self._reject("ack:refused", str(exc)[:120])
            return
        self.applied["ack"] += 1

    def _bundle_handler(self, slot, files, release) -> bool:
        if self.on_bundle is None:
            return False
        return self.on_bundle(slot, files, release)

    def status_changed(self) -> None:
        """Something on the status changed (e.g. a day of shadow evaluation): publish soon
        (at most once a second)."""
        self._status_dirty = True

    def _models_changed(self) -> None:
        self._status_due = 0.0           # report the outcome now
        self._status_dirty = True

    def _apply_model(self, ann: dict) -> None:
        self.releases.apply_model(ann)
        self.applied["model"] = self.releases.applied

    def _apply_model_chunk(self, chunk: dict) -> None:
        self.releases.apply_chunk(chunk)
        self.applied["model"] = self.releases.applied

    def _apply_root(self, body: dict) -> None:
        self.releases.apply_root(body)
