"""trey-export release battery|compliance: sign a bundle's release metadata and announce it.

    trey-export release SLOT (--registered NAME/VERSION | --bundle DIR) --broker HOST:PORT
                        [--cohort PCT | --vehicles FILE] [--shadow] [--promote]
                        [--version N] [--key PEM ...] [--expires-days D] [--trust-dir DIR]

The release version defaults to one above the slot's retained announcement on the broker
(the car refuses anything not strictly above what it accepted). --promote re-releases the
target of the slot's current (shadow) release as live: the cars running it as shadow swap it
in without downloading it again. --promote-after DAYS adds an on-car promotion policy.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from agent import topics as T
from agent.config import parse_listen
from export import release as REL
from export.bundle import DEV_SIGNING_KEY, tar_bundle


def configure(p) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--bundle", help="bundle directory")
    src.add_argument("--registered", help="MLflow registered model NAME/VERSION")
    src.add_argument("--promote", action="store_true", help="promote the slot's current shadow release to live")
    p.add_argument("--broker", required=True, help="MQTT broker HOST:PORT")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--cohort", type=float, help="percent of the fleet (stable hash of the vehicle id)")
    who.add_argument("--vehicles", help="file with one vehicle id per line")
    p.add_argument("--shadow", action="store_true", help="install beside the live model, evaluate, never alert")
    p.add_argument("--promote-after", type=int, default=None,
                   help="with --shadow: the car promotes it itself after N days if its MAE <= live's")
    p.add_argument("--min-agreement", type=float, default=0.9, help="promotion policy: alert/verdict agreement")
    p.add_argument("--version", type=int, default=None, help="release version (default: retained + 1)")
    p.add_argument("--key", action="append", default=None, help="release private key PEM (default: DEVELOPMENT key)")
    p.add_argument("--expires-days", type=float, default=REL.DEFAULT_EXPIRES_DAYS)
    p.add_argument("--chunk-bytes", type=int, default=0, help="announce in chunks of this size (0 = one message)")
    p.add_argument("--trust-dir", default=None, help="also publish this root chain (trey-export keys)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (--registered)")


def retained(broker: str, topic: str, wait: float = 1.0) -> dict | None:
    """The retained message on `topic`, if any (the broker sends it on subscribe)."""
    import paho.mqtt.client as mqtt
    host, port = parse_listen(broker, "--broker")
    got, done = [], threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.on_connect = lambda cl, *a: cl.subscribe(topic, 1)
    c.on_message = lambda cl, u, m: (got.append(m.payload), done.set())
    c.connect(host, port)
    c.loop_start()
    done.wait(wait)
    c.loop_stop()
    c.disconnect()
    if not got or not got[0]:
        return None
    try:
        return json.loads(got[0])
    except ValueError:
        return None


def publish(broker: str, messages) -> None:
    """Publish (topic, payload dict) pairs retained at QoS 1 and wait for every PUBACK."""
    import paho.mqtt.client as mqtt
    host, port = parse_listen(broker, "--broker")
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.connect(host, port)
    c.loop_start()
    try:
        infos = [c.publish(t, T.encode(p) if isinstance(p, dict) else p, qos=T.QOS, retain=True) for t, p in messages]
        for i in infos:
            i.wait_for_publish(30)
    finally:
        c.loop_stop()
        c.disconnect()


def announcement(slot: str, bundle_dir, version: int, keys, *, cohort=None, shadow=False, promote=None,
                 expires_days=REL.DEFAULT_EXPIRES_DAYS, chunk_bytes: int = 0):
    """-> [(topic, payload)] to publish for one release of a bundle directory."""
    tar = tar_bundle(bundle_dir)
    manifest = json.loads((Path(bundle_dir) / "manifest.json").read_text())
    rel = REL.release_doc(slot, version, tar, manifest, keys, expires_days=expires_days, cohort=cohort,
                          shadow=shadow, promote=promote)
    if chunk_bytes:
        ann, chunks = T.model_chunks(slot, rel, tar, chunk_bytes)
        return [*chunks, (T.model_topic(slot), ann)]
    return [(T.model_topic(slot), T.model_announcement(slot, rel, tar))]


def main(args) -> int:
    slot = args.action
    keys = args.key or [DEV_SIGNING_KEY]
    current = retained(args.broker, T.model_topic(slot))
    cur_rel = (current or {}).get("release") or {}
    version = args.version or (int((cur_rel.get("signed") or {}).get("version") or 0) + 1)
    cohort = None
    if args.cohort is not None:
        cohort = REL.cohort_percent(args.cohort, slot)
    elif args.vehicles:
        cohort = {"vehicles": [v.strip() for v in Path(args.vehicles).read_text().splitlines() if v.strip()]}
    promote = None
    if args.promote_after is not None:
        promote = {"after_days": args.promote_after, "max_mae_ratio": 1.0, "min_agreement": args.min_agreement}
    messages = []
    if args.trust_dir:
        messages.append((T.ROOT_TOPIC, T.root_message(REL.chain(args.trust_dir))))
    if args.promote:
        if not cur_rel.get("signed") or not cur_rel["signed"].get("shadow"):
            print(f"no shadow release retained on {T.model_topic(slot)} to promote")
            return 2
        s = cur_rel["signed"]
        signed = {**s, "version": version, "shadow": False, "promote": None,
                  "expires": REL.R.format_time(__import__("time").time() + args.expires_days * 86400)}
        if cohort is not None:
            signed["cohort"] = cohort
        ann = {**current, "msg_id": T.new_msg_id(), "release": REL.sign(signed, keys)}
        messages.append((T.model_topic(slot), ann))
        b = s["target"].get("bundle") or {}
        label, cohort = f"{b.get('name')}@{b.get('version')} (release {s['version']}, shadow)", signed["cohort"]
    else:
        bundle_dir = args.bundle
        if args.registered:
            from export.registry import download_registered
            bundle_dir = download_registered(args.registered, args.tracking_uri)
        if not bundle_dir:
            print("one of --bundle, --registered or --promote is required")
            return 2
        messages += announcement(slot, bundle_dir, version, keys, cohort=cohort, shadow=args.shadow, promote=promote,
                                 expires_days=args.expires_days, chunk_bytes=args.chunk_bytes)
        label = str(bundle_dir)
    publish(args.broker, messages)
    print(json.dumps({"slot": slot, "version": version, "from": label, "cohort": cohort, "shadow": args.shadow,
                      "promote": bool(args.promote), "topic": T.model_topic(slot)}))
    return 0
