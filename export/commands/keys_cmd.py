"""trey-export keys init|add|revoke|rotate|publish: the release root of trust (export.release).

Keys come from PEM files (`trey-export bundle keygen`); the trust directory holds the root
chain root.1.json, root.2.json, ... that cars follow (published retained on trey/v1/fleet/root).
"""

from __future__ import annotations

import json

from export import release as REL


def configure(p) -> None:
    action = p.prog.split()[-1]
    p.add_argument("--dir", required=True, help="trust directory (root.N.json chain)")
    if action == "init":
        p.add_argument("--root-key", action="append", required=True, help="root private key PEM (repeat)")
        p.add_argument("--threshold", type=int, default=1, help="root signatures needed (default 1)")
        p.add_argument("--release-key", action="append", required=True,
                       help="release (targets) key: public or private PEM (repeat)")
        p.add_argument("--release-threshold", type=int, default=1)
    elif action == "publish":
        p.add_argument("--broker", required=True, help="MQTT broker HOST:PORT")
    else:
        p.add_argument("--sign", action="append", required=True,
                       help="root private key PEM signing the new root (repeat: the old root's threshold "
                            "and the new root's)")
        if action == "add":
            p.add_argument("--release-key", action="append", required=True, help="release key to add (repeat)")
        elif action == "revoke":
            p.add_argument("--key", action="append", required=True, help="key file or key id to revoke (repeat)")
        elif action == "rotate":
            p.add_argument("--new-root-key", action="append", required=True, help="the new root keys (repeat)")
            p.add_argument("--threshold", type=int, default=None, help="new root threshold")


def main(args) -> int:
    if args.action == "init":
        out = REL.init_root(args.dir, args.root_key, args.threshold, args.release_key, args.release_threshold)
    elif args.action == "add":
        out = REL.update_root(args.dir, args.sign, add_targets=args.release_key)
    elif args.action == "revoke":
        out = REL.update_root(args.dir, args.sign, revoke=args.key)
    elif args.action == "rotate":
        out = REL.update_root(args.dir, args.sign, root_keys=args.new_root_key, root_threshold=args.threshold)
    else:
        from export.commands.release_cmd import publish
        from agent import topics as T
        roots = REL.chain(args.dir)
        publish(args.broker, [(T.ROOT_TOPIC, T.root_message(roots))])
        print(json.dumps({"published": T.ROOT_TOPIC, "root_version": roots[-1]["signed"]["version"]}))
        return 0
    doc = json.loads(out.read_text())["signed"]
    print(json.dumps({"wrote": str(out), "version": doc["version"],
                      "roles": {r: v for r, v in doc["roles"].items()}, "revoked": doc["revoked"]}))
    return 0
