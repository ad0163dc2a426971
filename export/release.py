"""Cloud side of the release contract (format and checks: agent.release_metadata).

Key management: a trust directory holds root.1.json, root.2.json, ... (every root version,
the chain the cars follow). Private keys are PEM files given on the command line; nothing
here stores a private key. `init_root` starts a chain, `update_root` writes the next root
(add/revoke release keys, rotate root keys, change thresholds) signed by the keys given — the
car accepts it only if they meet the OLD root's threshold and the new one's.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent import release_metadata as R
from agent.bundle import load_public_key
from export.bundle import load_private_key

# DEVELOPMENT root key (public: it is in the repository). It signed agent/keys/dev_root.json,
# the root shipped with the agent; the release key of that root is export/keys/dev_signing_key.pem.
DEV_ROOT_KEY = Path(__file__).resolve().parent / "keys" / "dev_root_key.pem"
DEFAULT_EXPIRES_DAYS = 30


def _raw(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_of(path) -> Ed25519PublicKey:
    """A public key from a .pub/.pem public file, or the public half of a private PEM."""
    data = Path(path).read_bytes()
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    return load_public_key(data)


def keyid_of(path) -> str:
    return R.key_id(_raw(public_of(path)))


def sign(signed: dict, private_keys) -> dict:
    msg = R.canonical(signed)
    sigs = []
    for k in private_keys:
        key = k if isinstance(k, Ed25519PrivateKey) else load_private_key(k)
        sigs.append({"keyid": R.key_id(_raw(key.public_key())), "sig": base64.b64encode(key.sign(msg)).decode()})
    return {"signed": signed, "signatures": sigs}


def _key_entry(pub: Ed25519PublicKey) -> tuple[str, dict]:
    raw = _raw(pub)
    return R.key_id(raw), {"keytype": "ed25519", "public": base64.b64encode(raw).decode()}


def root_signed(version: int, root_pubs, root_threshold: int, targets_pubs, targets_threshold: int = 1,
                revoked=(), expires_days: int = 3650) -> dict:
    keys, roles = {}, {}
    for role, pubs, thr in (("root", root_pubs, root_threshold), ("targets", targets_pubs, targets_threshold)):
        ids = []
        for p in pubs:
            kid, entry = _key_entry(p)
            keys[kid] = entry
            ids.append(kid)
        if not 1 <= thr <= len(ids):
            raise ValueError(f"{role} threshold {thr} needs between 1 and {len(ids)} keys")
        roles[role] = {"keyids": sorted(ids), "threshold": thr}
    return {"_type": "root", "spec": R.SPEC, "version": version,
            "expires": R.format_time(time.time() + expires_days * 86400),
            "keys": keys, "roles": roles, "revoked": sorted(set(revoked))}


def chain(trust_dir) -> list[dict]:
    d = Path(trust_dir)
    roots = sorted((json.loads(f.read_text()) for f in d.glob("root.*.json")),
                   key=lambda r: r["signed"]["version"])
    if not roots:
        raise FileNotFoundError(f"{d}: no root.N.json (run `trey-export keys init`)")
    return roots


def init_root(trust_dir, root_keys, root_threshold: int, targets_keys, targets_threshold: int = 1) -> Path:
    """Root version 1, signed by every root key given (private PEMs)."""
    d = Path(trust_dir)
    d.mkdir(parents=True, exist_ok=True)
    if list(d.glob("root.*.json")):
        raise FileExistsError(f"{d} already holds a root chain")
    signed = root_signed(1, [public_of(k) for k in root_keys], root_threshold,
                         [public_of(k) for k in targets_keys], targets_threshold)
    out = d / "root.1.json"
    out.write_text(json.dumps(sign(signed, root_keys), indent=2, sort_keys=True) + "\n")
    return out


def update_root(trust_dir, sign_with, *, add_targets=(), revoke=(), root_keys=None, root_threshold=None,
                targets_threshold=None) -> Path:
    """Root N+1 from root N: add release keys, revoke keys (by file or key id), replace the root
    keys (rotation), change thresholds; signed by `sign_with` (old and new root keys)."""
    cur = chain(trust_dir)[-1]["signed"]
    revoke_ids = {r if len(str(r)) == 64 and not Path(str(r)).exists() else keyid_of(r) for r in revoke}
    keys = {kid: load_public_key(cur["keys"][kid]["public"].encode()) for kid in cur["keys"]}
    targets = [keys[k] for k in cur["roles"]["targets"]["keyids"] if k not in revoke_ids]
    have = {R.key_id(_raw(p)) for p in targets}
    targets += [p for p in map(public_of, add_targets) if R.key_id(_raw(p)) not in have]
    if root_keys:
        roots = [public_of(k) for k in root_keys]
    else:
        roots = [keys[k] for k in cur["roles"]["root"]["keyids"] if k not in revoke_ids]
    if not targets:
        raise ValueError("no release (targets) key would be left")
    rt = root_threshold or min(cur["roles"]["root"]["threshold"], len(roots))
    tt = targets_threshold or min(cur["roles"]["targets"]["threshold"], len(targets))
    signed = root_signed(cur["version"] + 1, roots, rt, targets, tt, set(cur.get("revoked") or []) | revoke_ids)
    out = Path(trust_dir) / f"root.{cur['version'] + 1}.json"
    out.write_text(json.dumps(sign(signed, sign_with), indent=2, sort_keys=True) + "\n")
    return out


def cohort_percent(pct: float, slot: str) -> dict:
    # salt = slot: the same cars stay in as a rollout widens (agent.release_metadata.in_cohort)
    return {"percent": float(pct), "salt": slot}


def release_doc(slot: str, version: int, tar: bytes, manifest: dict, keys, *, expires_days: float = DEFAULT_EXPIRES_DAYS,
                cohort: dict | None = None, shadow: bool = False, promote: dict | None = None,
                extra: dict | None = None) -> dict:
    """Signed release metadata for one bundle tar (length + sha256 pinned)."""
    import hashlib
    signed = {"_type": "release", "spec": R.SPEC, "slot": slot, "version": int(version),
              "expires": R.format_time(time.time() + expires_days * 86400),
              "target": {"length": len(tar), "sha256": hashlib.sha256(tar).hexdigest(),
                         "bundle": {"name": manifest.get("name"), "version": manifest.get("version")}},
              "cohort": cohort, "shadow": bool(shadow), "promote": promote, **(extra or {})}
    return sign(signed, keys)


__all__ = ["init_root", "update_root", "chain", "release_doc", "cohort_percent", "sign", "keyid_of",
           "public_of", "DEV_ROOT_KEY"]
