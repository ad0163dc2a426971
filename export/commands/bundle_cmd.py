"""trey-export bundle keygen|sign|verify|tar|lean."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agent.bundle import BundleError, verify_bundle
from export.bundle import generate_keypair, sign_dir, tar_bundle


def configure(p) -> None:
    action = p.prog.split()[-1]
    if action == "keygen":
        p.add_argument("--private", required=True, help="output path of the private key (PEM)")
        p.add_argument("--public", required=True, help="output path of the public key (PEM)")
    elif action == "sign":
        p.add_argument("bundle", help="bundle directory")
        p.add_argument("--key", default=None, help="ed25519 private key PEM (default: DEVELOPMENT key)")
    elif action == "verify":
        p.add_argument("bundle", help="bundle directory or .tar")
        p.add_argument("--trusted", nargs="*", default=None,
                       help="trusted public key file(s)/dir(s) (default: agent's DEVELOPMENT key)")
    elif action == "tar":
        p.add_argument("bundle", help="bundle directory")
        p.add_argument("--out", required=True, help="output .tar path")
    elif action == "lean":
        p.add_argument("bundle", help="compliance bundle directory (verified first)")
        p.add_argument("--out", required=True, help="output bundle directory (may be the input)")
        p.add_argument("--version", default=None, help="the new bundle's version (default: next patch)")
        p.add_argument("--key", default=None, help="ed25519 private key PEM (default: DEVELOPMENT key)")
        p.add_argument("--trusted", nargs="*", default=None, help="trusted public key file(s)/dir(s) for the input")
        p.add_argument("--notes", type=int, default=300, help="held-out notes per generated set to check it on")


def main(args) -> int:
    if args.action == "keygen":
        generate_keypair(args.private, args.public)
        print(f"wrote {args.private} (keep secret) and {args.public}")
    elif args.action == "sign":
        sign_dir(args.bundle, args.key)
        print(f"signed {args.bundle}")
    elif args.action == "verify":
        try:
            b = verify_bundle(args.bundle, args.trusted or None)
        except BundleError as exc:
            print(f"REFUSED: {exc}", file=sys.stderr)
            return 1
        print(json.dumps({"ok": True, "name": b.name, "version": b.version, "sha256": b.sha256,
                          "files": {k: v["sha256"] for k, v in b.manifest["files"].items()}}))
    elif args.action == "tar":
        Path(args.out).write_bytes(tar_bundle(args.bundle))
        print(f"wrote {args.out}")
    elif args.action == "lean":
        from export.compliance.lean_bundle import LeanError, rebuild_lean
        try:
            print(json.dumps(rebuild_lean(args.bundle, args.out, args.version, args.key, args.trusted or None,
                                          args.notes)))
        except (LeanError, BundleError) as exc:
            print(f"REFUSED: {exc}", file=sys.stderr)
            return 1
    return 0
