"""Signed release metadata: what the car checks before it reads a single byte of a bundle.

The agent owns this contract (export/ builds and signs it with the same functions). It gives
model releases the properties of TUF/Uptane image metadata, kept small enough for the head
unit (README "Model releases" says why python-tuf itself is not used):

  root     {"signed": {"_type": "root", "spec", "version", "expires", "keys": {keyid: {"keytype":
            "ed25519", "public": base64 raw}}, "roles": {"root": {"keyids", "threshold"},
            "targets": {"keyids", "threshold"}}, "revoked": [keyid, ...]}, "signatures": [...]}
           The root of trust. The car starts from a shipped/configured root and learns root
           version N+1 only when it is signed by a threshold of root N's root keys AND a
           threshold of its own (key rotation; the old root vouches for the new one). Release
           (targets) keys are separate from the root keys; revoking one = a new root without it
           (listed in "revoked" so the refusal can say so). A root does not expire on the car:
           a car parked for a year must still follow the chain.
  release  {"signed": {"_type": "release", "spec", "slot", "version", "expires",
            "target": {"length", "sha256", "bundle": {"name", "version"}},
            "cohort": null | {"percent", "salt"} | {"vehicles": [...]},
            "shadow": bool, "promote": null | {"after_days", "max_mae_ratio", "min_agreement"}},
            "signatures": [{"keyid", "sig"}]}
           Signed by a threshold of the root's targets keys. Per slot the car persists the
           highest version it accepted and refuses anything older or equal (rollback and
           replay); an expired release is refused (freeze); the slot is signed (no
           mix-and-match between battery and compliance); length + sha256 pin the bundle tar,
           checked before it is opened (endless data, tampering). The cohort decides which cars
           install it; a car outside ignores it. A shadow release installs beside the live
           model; a later release of the same target with shadow=false promotes it.

Signatures are ed25519 over canonical JSON of "signed" (sorted keys, no whitespace, UTF-8).
Key ids are the sha256 of the raw 32-byte public key. Errors are ReleaseError(reason,
detail) with a short reason (e.g. "rollback", "expired", "revoked_key") reported on status.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SPEC = "trey-release/1"
MAX_SIGNATURES = 16
MAX_KEYS = 32
MAX_REFUSED = 32             # persisted refusals kept (oldest dropped)
# DEVELOPMENT root of trust shipped with the agent: root key = export/keys/dev_root_key.pem,
# release key = export/keys/dev_signing_key.pem (both public, in this repository). A production
# head unit configures its own root ([models] root = PATH).
DEV_ROOT = Path(str(resources.files("agent"))) / "keys" / "dev_root.json"


class ReleaseError(Exception):
    """Metadata the car must not act on; reason is short and stable (status, counters)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()


def parse_time(text) -> float:
    if not isinstance(text, str):
        raise ReleaseError("bad_format", "expires is not a string")
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReleaseError("bad_format", f"expires {text[:40]!r}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.timestamp()


def format_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _signed(doc, kind: str) -> dict:
    if not isinstance(doc, dict) or not isinstance(doc.get("signed"), dict) \
            or not isinstance(doc.get("signatures"), list) or len(doc["signatures"]) > MAX_SIGNATURES:
        raise ReleaseError("bad_format", f"not a signed {kind} document")
    s = doc["signed"]
    if s.get("_type") != kind or s.get("spec") != SPEC:
        raise ReleaseError("bad_format", f"_type/spec is not {kind}/{SPEC}")
    v = s.get("version")
    if not isinstance(v, int) or isinstance(v, bool) or not 0 < v < 2 ** 53:
        raise ReleaseError("bad_format", "version is not a positive integer")
    return s


def _keys(root_signed: dict) -> dict[str, Ed25519PublicKey]:
    keys = root_signed.get("keys")
    if not isinstance(keys, dict) or len(keys) > MAX_KEYS:
        raise ReleaseError("bad_format", "root keys")
    out = {}
    for kid, k in keys.items():
        try:
            raw = base64.b64decode(k["public"], validate=True)
            if k.get("keytype") != "ed25519" or key_id(raw) != kid:
                raise ValueError
            out[kid] = Ed25519PublicKey.from_public_bytes(raw)
        except (KeyError, TypeError, ValueError):
            raise ReleaseError("bad_format", f"root key {str(kid)[:16]}") from None
    return out


def _role(root_signed: dict, role: str) -> tuple[set, int]:
    r = (root_signed.get("roles") or {}).get(role)
    if not isinstance(r, dict) or not isinstance(r.get("keyids"), list) or not isinstance(r.get("threshold"), int) \
            or isinstance(r.get("threshold"), bool) or r["threshold"] < 1:
        raise ReleaseError("bad_format", f"root role {role}")
    return set(r["keyids"]), r["threshold"]


def count_signatures(doc: dict, keys: dict, keyids: set) -> set:
    """Key ids in `keyids` whose signature over canonical(doc["signed"]) verifies."""
    msg = canonical(doc["signed"])
    good = set()
    for s in doc["signatures"]:
        if not isinstance(s, dict) or s.get("keyid") not in keyids or s["keyid"] not in keys:
            continue
        try:
            keys[s["keyid"]].verify(base64.b64decode(s.get("sig", ""), validate=True), msg)
            good.add(s["keyid"])
        except (InvalidSignature, ValueError, TypeError):
            continue
    return good


def verify_root_update(current: dict, new: dict) -> dict:
    """Root N -> N+1: signed by the threshold of N's root role and of N+1's own. -> new signed."""
    cur, nxt = _signed(current, "root"), _signed(new, "root")
    if nxt["version"] != cur["version"] + 1:
        raise ReleaseError("root_version", f"root {nxt['version']} does not follow {cur['version']}")
    old_ids, old_thr = _role(cur, "root")
    new_ids, new_thr = _role(nxt, "root")
    _role(nxt, "targets")
    by_old = count_signatures(new, _keys(cur), old_ids)
    if len(by_old) < old_thr:
        raise ReleaseError("root_threshold", f"{len(by_old)} of {old_thr} signatures by root {cur['version']}'s keys")
    by_new = count_signatures(new, _keys(nxt), new_ids)
    if len(by_new) < new_thr:
        raise ReleaseError("root_threshold", f"{len(by_new)} of {new_thr} signatures by its own root keys")
    return nxt


@dataclass(frozen=True)
class Release:
    slot: str
    version: int
    expires: str
    length: int
    sha256: str
    bundle_name: str
    bundle_version: str
    cohort: dict | None
    shadow: bool
    promote: dict | None
    signed: dict

    def label(self) -> str:
        return f"{self.slot}#{self.version} ({self.bundle_name}@{self.bundle_version})"


def in_cohort(cohort, vehicle_id: str) -> bool:
    """The one cohort rule (cloud and car): None = everyone; {"vehicles": [...]} = listed;
    {"percent": P, "salt": S} = a stable hash of the vehicle id below P % (same salt, bigger
    P = a superset, so widening a rollout never drops a car that already has it)."""
    if cohort is None:
        return True
    if "vehicles" in cohort:
        return vehicle_id in cohort["vehicles"]
    h = int.from_bytes(hashlib.sha256(f"{cohort.get('salt', '')}:{vehicle_id}".encode()).digest()[:8], "big")
    return h * 100 < float(cohort["percent"]) * 2 ** 64


def parse_release(root_signed: dict, doc, slot: str, now: float) -> Release:
    """Signature threshold, revocation, slot, expiry and shape of one release document."""
    s = _signed(doc, "release")
    keys = _keys(root_signed)
    ids, thr = _role(root_signed, "targets")
    good = count_signatures(doc, keys, ids)
    if len(good) < thr:
        revoked = set(root_signed.get("revoked") or [])
        signers = {x.get("keyid") for x in doc["signatures"] if isinstance(x, dict)}
        if signers & revoked:
            raise ReleaseError("revoked_key", f"signed by revoked key {sorted(signers & revoked)[0][:12]}")
        raise ReleaseError("bad_signature", f"{len(good)} of {thr} valid release-key signatures")
    if s.get("slot") != slot:
        raise ReleaseError("wrong_slot", f"release is for slot {str(s.get('slot'))[:32]!r}, announced on {slot!r}")
    if parse_time(s.get("expires")) <= now:
        raise ReleaseError("expired", f"expired {s['expires']}")
    t = s.get("target")
    if not isinstance(t, dict) or not isinstance(t.get("length"), int) or isinstance(t.get("length"), bool) \
            or t["length"] <= 0 or not isinstance(t.get("sha256"), str) or len(t["sha256"]) != 64:
        raise ReleaseError("bad_format", "target length/sha256")
    b = t.get("bundle") if isinstance(t.get("bundle"), dict) else {}
    cohort = s.get("cohort")
    if cohort is not None and not (isinstance(cohort, dict) and (
            isinstance(cohort.get("vehicles"), list) or isinstance(cohort.get("percent"), (int, float)))):
        raise ReleaseError("bad_format", "cohort")
    promote = s.get("promote") if isinstance(s.get("promote"), dict) else None
    return Release(slot, s["version"], s["expires"], t["length"], t["sha256"], str(b.get("name", "")),
                   str(b.get("version", "")), cohort, bool(s.get("shadow")), promote, s)


def check_target(release: Release, data: bytes) -> None:
    """Length first (cheap), then sha256: before anything parses the bytes."""
    if len(data) != release.length:
        raise ReleaseError("length_mismatch", f"{len(data)} bytes, signed length {release.length}")
    if hashlib.sha256(data).hexdigest() != release.sha256:
        raise ReleaseError("sha256_mismatch", "bundle differs from the signed metadata")


def check_root_file(path) -> None:
    """A configured root must be a well-formed signed root (ValueError says why)."""
    try:
        doc = json.loads(Path(path).read_text())
        s = _signed(doc, "root")
        _keys(s)
        _role(s, "root")
        _role(s, "targets")
        if len(count_signatures(doc, _keys(s), _role(s, "root")[0])) < _role(s, "root")[1]:
            raise ReleaseError("root_threshold", "not signed by its own root threshold")
    except ReleaseError as exc:
        raise ValueError(f"{path}: {exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from None


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(obj, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class TrustStore:
    """The car's persisted trust state (state_dir/trust): current root, per-slot highest
    accepted release, and the releases refused after their metadata verified (so a retained
    bad release is not downloaded and checked again at every boot)."""

    def __init__(self, directory, initial_root=None, clock=time.time):
        self.dir = Path(directory)
        self.clock = clock
        self._lock = threading.Lock()
        root_file = self.dir / "root.json"
        src = root_file if root_file.is_file() else Path(initial_root or DEV_ROOT)
        self.root = json.loads(src.read_text())
        _signed(self.root, "root")
        self.accepted: dict = self._read("accepted.json", {})
        self.refused: list = self._read("refused.json", [])

    def _read(self, name, default):
        try:
            return json.loads((self.dir / name).read_text())
        except (OSError, ValueError):
            return default

    @property
    def root_version(self) -> int:
        return self.root["signed"]["version"]

    def update_root(self, docs: list) -> int:
        """Apply every root newer than ours, in order; raise on the first that does not verify."""
        with self._lock:
            for doc in sorted((d for d in docs if isinstance(d, dict) and isinstance(d.get("signed"), dict)),
                              key=lambda d: d["signed"].get("version") if isinstance(d["signed"].get("version"), int) else 0):
                v = doc["signed"].get("version")
                if not isinstance(v, int) or v <= self.root_version:
                    continue
                verify_root_update(self.root, doc)
                self.root = doc
                _write_json(self.dir / "root.json", doc)
            return self.root_version

    def check_release(self, doc, slot: str) -> Release:
        """Verify a release against the current root and the slot's persisted version."""
        rel = parse_release(self.root["signed"], doc, slot, self.clock())
        seen = (self.accepted.get(slot) or {}).get("version", 0)
        if rel.version < seen:
            raise ReleaseError("rollback", f"version {rel.version} is older than accepted {seen}")
        if rel.version == seen:
            raise ReleaseError("replay", f"version {rel.version} already accepted")
        return rel

    def accept(self, rel: Release) -> None:
        with self._lock:
            self.accepted[rel.slot] = {"version": rel.version, "sha256": rel.sha256, "expires": rel.expires,
                                       "shadow": rel.shadow, "bundle": f"{rel.bundle_name}@{rel.bundle_version}"}
            _write_json(self.dir / "accepted.json", self.accepted)

    def refused_reason(self, rel: Release) -> str | None:
        for r in self.refused:
            if r.get("slot") == rel.slot and r.get("version") == rel.version and r.get("sha256") == rel.sha256:
                return r.get("reason") or "refused"
        return None

    def note_refused(self, rel: Release, reason: str) -> None:
        with self._lock:
            self.refused = [*self.refused, {"slot": rel.slot, "version": rel.version, "sha256": rel.sha256,
                                            "reason": reason[:200]}][-MAX_REFUSED:]
            _write_json(self.dir / "refused.json", self.refused)

    def expired(self, slot: str) -> bool:
        """The accepted release of this slot has expired (withheld updates become visible)."""
        a = self.accepted.get(slot)
        try:
            return bool(a) and parse_time(a.get("expires")) <= self.clock()
        except ReleaseError:
            return True


__all__ = ["check_root_file", "ReleaseError", "Release", "TrustStore", "canonical", "key_id", "in_cohort", "parse_release",
           "verify_root_update", "check_target", "format_time", "parse_time", "DEV_ROOT", "SPEC"]
