"""Model announcements off the downlink: verify the signed release, then (and only then)
fetch, check and open the bundle. Runs on agent.sync's downlink worker thread.

Order of checks, cheapest first, so nothing a stranger can publish costs more than parsing
one bounded JSON payload and a few ed25519 verifications:
  1. release metadata (agent.release_metadata): root/targets signatures, revoked keys, slot,
     expiry, version strictly above the slot's persisted one, cohort (outside = ignored);
  2. a release refused before (persisted by slot, version and sha256) is refused again from
     that record: a retained bad release is not downloaded and checked at every boot;
  3. bundle bytes: inline base64 whose decoded size cannot exceed the signed length, or
     chunks — subscribed only now, kept only for this slot's signed sha256, cut as soon as
     they exceed the signed length (an endless download is refused, not buffered);
  4. length + sha256 against the metadata, and only then the tar is opened (uncompressed
     only, a bounded number of members: agent.bundle.read_tar_bytes);
  5. the bundle's own signature (agent.bundle.verify_files) and the daemon's load.
A release whose target is the slot's current shadow bundle and that is not itself a shadow
release is a promotion: no download, on_promote(slot, release).
Memory: at most one pending chunked download per known slot, each bounded by its signed
length, all of them together by MAX_DOWNLOAD_BYTES; nothing is kept for unknown slots.
"""

from __future__ import annotations

import base64
import binascii
import logging
from datetime import datetime, timezone

from agent import bundle as B
from agent import release_metadata as R

log = logging.getLogger("agent.model_downlink")
# The largest bundle the car will download: shipped bundles are ~0.1 MB; a few MB of chunks
# plus the joined tar must fit the agent's ~90 MB budget (the unit's MemoryMax is 160 MB).
MAX_DOWNLOAD_BYTES = 16 * 1024 * 1024


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class ModelDownlink:
    def __init__(self, trust: R.TrustStore, vehicle_id: str, slots, *, on_bundle, on_promote=None,
                 shadow_sha=None, reject, subscribe, unsubscribe, trusted_keys=None, changed=None):
        self.trust = trust
        self.vehicle_id = vehicle_id
        self.slots = tuple(slots)               # known slot names; anything else is refused
        self.on_bundle = on_bundle              # (slot, files, release) -> bool
        self.on_promote = on_promote            # (slot, release) -> bool
        self.shadow_sha = shadow_sha or (lambda slot: None)   # slot -> tar sha256 of its shadow
        self.reject = reject                    # (reason, detail)
        self.subscribe, self.unsubscribe = subscribe, unsubscribe
        self.trusted_keys = trusted_keys
        self.changed = changed or (lambda: None)
        self.models: dict[str, dict] = {}       # slot -> last outcome (status topic, health)
        self.last_refused: dict[str, dict] = {}  # slot -> last refusal (health / HMI)
        self._pending: dict[str, tuple] = {}    # slot -> (release, n_chunks, {index: bytes}, bytes held)
        self.applied = 0

    # ------------------------------------------------------------------ outcomes
    def _outcome(self, slot: str, outcome: str, rel: R.Release | None = None, reason: str = "",
                 count: str | None = None) -> None:
        o = {"outcome": outcome, "at": _now()}
        if rel is not None:
            o.update(release=rel.version, version=rel.bundle_version, bundle=rel.bundle_name, sha256=rel.sha256,
                     shadow=rel.shadow)
        if reason:
            o["reason"] = reason[:200]
        prev = self.models.get(slot) or {}
        self.models[slot] = o
        if outcome == "refused":
            self.last_refused[slot] = o
            self.reject(count or "model:refused", f"{slot}: {reason}")
            if prev.get("reason") != o.get("reason"):     # a flood of the same refusal logs once
                log.error("model release for %s refused: %s", slot, reason)
        self.changed()

    def _refuse(self, slot: str, rel: R.Release, reason: str, persist: bool = True) -> None:
        """persist: the signed target itself is bad (it verified against the metadata), so the
        same release is refused from the record next time instead of being fetched again."""
        if persist:
            self.trust.note_refused(rel, reason)
        self._outcome(slot, "refused", rel, reason)

    def note_event(self, slot: str, event: dict) -> None:
        """A lifecycle event on the car (promotion by policy, rollback) for the status topic."""
        self.models[slot] = {**(self.models.get(slot) or {}), **event, "at": _now()}
        self.changed()

    # ------------------------------------------------------------------ root chain
    def apply_root(self, body: dict) -> None:
        before = self.trust.root_version
        try:
            v = self.trust.update_root(body["roots"])
        except R.ReleaseError as exc:
            self.reject(f"root:{exc.reason}", exc.detail)
            self.models["root"] = {"outcome": "refused", "reason": str(exc)[:200], "at": _now(),
                                   "version": self.trust.root_version}
            self.last_refused["root"] = self.models["root"]
            log.error("root update refused: %s (keeping root %d)", exc, self.trust.root_version)
        else:
            if v != before:
                log.info("root of trust updated: %d -> %d", before, v)
                self.models["root"] = {"outcome": "installed", "version": v, "at": _now()}
        self.changed()

    # ------------------------------------------------------------------ announcements
    def apply_model(self, ann: dict) -> None:
        slot = ann["name"]
        if slot not in self.slots:
            self.reject("model:unknown_slot", slot)
            return
        try:
            rel = self.trust.check_release(ann["release"], slot)
        except R.ReleaseError as exc:
            if exc.reason == "replay" and ann.get("retained") and self._accepted_same(slot, ann):
                return       # the retained copy of the release we run, re-delivered on (re)subscribe
            self._outcome(slot, "refused", None, str(exc), count=f"model:{exc.reason}")
            return
        if not R.in_cohort(rel.cohort, self.vehicle_id):
            self.models[slot] = {"outcome": "not_in_cohort", "release": rel.version, "version": rel.bundle_version,
                                 "at": _now()}
            self.changed()
            return
        previous = self.trust.refused_reason(rel)
        if previous is not None:
            self._outcome(slot, "refused", rel, f"previously refused: {previous}", count="model:previously_refused")
            return
        self._drop_pending(slot)
        if not rel.shadow and rel.sha256 == self.shadow_sha(slot):
            self._promote(slot, rel)
            return
        if rel.length > MAX_DOWNLOAD_BYTES:
            self._refuse(slot, rel, f"signed length {rel.length} exceeds the car's {MAX_DOWNLOAD_BYTES} bytes")
            return
        if ann["bundle_b64"] is None:
            if ann["chunks"] > max(1, rel.length):
                self._refuse(slot, rel, f"{ann['chunks']} chunks for a {rel.length}-byte bundle")
                return
            self._pending[slot] = (rel, ann["chunks"], {}, 0)
            self.subscribe(slot)
            return
        b64 = ann["bundle_b64"]
        if len(b64) > 4 * ((rel.length + 2) // 3):
            self._refuse(slot, rel, f"inline bundle longer than the signed length {rel.length}", persist=False)
            return
        try:
            tar = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            self._refuse(slot, rel, "bundle is not base64", persist=False)
            return
        self._install(slot, rel, tar)

    def _accepted_same(self, slot: str, ann: dict) -> bool:
        a = self.trust.accepted.get(slot) or {}
        s = ann["release"].get("signed") or {}
        return a.get("version") == s.get("version") and a.get("sha256") == (s.get("target") or {}).get("sha256")

    def apply_chunk(self, chunk: dict) -> None:
        slot = chunk["name"]
        p = self._pending.get(slot)
        if p is None or chunk["sha256"] != p[0].sha256:
            self.reject("model_chunk:unannounced", f"{slot}/{chunk['index']}")
            return
        rel, n, parts, held = p
        if chunk["index"] >= n:
            self.reject("model_chunk:bad_index", f"{slot}/{chunk['index']}")
            return
        old = parts.get(chunk["index"])
        held += len(chunk["data"]) - (len(old) if old is not None else 0)
        if held > rel.length:          # endless / oversized download: cut at the signed length
            self._drop_pending(slot)
            self._refuse(slot, rel, f"chunks exceed the signed length {rel.length}", persist=False)
            return
        others = self.pending_bytes() - p[3]
        if others + held > MAX_DOWNLOAD_BYTES:     # one bound across all slots' downloads
            self._drop_pending(slot)
            self._refuse(slot, rel, f"downloads in progress exceed {MAX_DOWNLOAD_BYTES} bytes", persist=False)
            return
        parts[chunk["index"]] = chunk["data"]
        self._pending[slot] = (rel, n, parts, held)
        if len(parts) == n:
            self._drop_pending(slot)
            self._install(slot, rel, b"".join(parts[i] for i in range(n)))

    def _drop_pending(self, slot: str) -> None:
        if self._pending.pop(slot, None) is not None:
            self.unsubscribe(slot)

    def pending_bytes(self) -> int:
        return sum(p[3] for p in self._pending.values())

    # ------------------------------------------------------------------ install / promote
    def _install(self, slot: str, rel: R.Release, tar: bytes) -> None:
        try:
            R.check_target(rel, tar)
        except R.ReleaseError as exc:
            # Not remembered: bytes that differ from the metadata are the transport's (or an
            # attacker's) fault; the genuine bundle of this release must still install.
            self._refuse(slot, rel, str(exc), persist=False)
            return
        try:
            files = B.read_tar_bytes(tar, f"release:{slot}")
            del tar
            keys = self.trusted_keys if self.trusted_keys is not None else B.DEV_TRUSTED_KEYS
            if not (isinstance(keys, list) and keys and not isinstance(keys[0], (str, bytes))
                    and not hasattr(keys[0], "__fspath__")):
                keys = B.load_trusted_keys(keys)
            bundle = B.verify_files(files, keys, f"release:{slot}")
            if rel.bundle_version and bundle.version != rel.bundle_version:
                raise B.BundleError(f"bundle is version {bundle.version}, release says {rel.bundle_version}")
            if not self.on_bundle(slot, files, rel):
                raise B.BundleError("the agent refused to load it")
        except Exception as exc:          # BundleError, the daemon failing to load it
            self._refuse(slot, rel, str(exc) or type(exc).__name__)
            return
        self.trust.accept(rel)
        self.applied += 1
        log.info("model release %s verified and installed%s", rel.label(), " as shadow" if rel.shadow else "")
        self._outcome(slot, "installed_shadow" if rel.shadow else "installed", rel)

    def _promote(self, slot: str, rel: R.Release) -> None:
        try:
            ok = self.on_promote is not None and self.on_promote(slot, rel)
        except Exception as exc:
            ok, why = False, str(exc)
        else:
            why = "no shadow model to promote" if not ok else ""
        if not ok:
            self._refuse(slot, rel, why or "promotion failed")
            return
        self.trust.accept(rel)
        self.applied += 1
        log.info("model release %s: shadow promoted to live", rel.label())
        self._outcome(slot, "promoted", rel)


__all__ = ["ModelDownlink"]
