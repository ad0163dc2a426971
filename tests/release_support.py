"""Helpers for the release tests (owner: releases): signed announcements of real bundles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from agent import topics as T
from agent.bundle import DEFAULT_BATTERY_BUNDLE, DEFAULT_COMPLIANCE_BUNDLE


def resigned_bundle(tmp: Path, version: str, source=DEFAULT_BATTERY_BUNDLE, bundle_key=None) -> Path:
    """A shipped bundle re-versioned and re-signed (dev bundle key unless bundle_key), as a directory."""
    from export.bundle import sign_dir
    d = Path(tmp) / f"{Path(source).name}-{version}"
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(source, d)
    m = json.loads((d / "manifest.json").read_text())
    m["version"] = version
    (d / "manifest.json").write_text(json.dumps(m))
    sign_dir(d, bundle_key)
    return d


def release_messages(slot: str, bundle_dir, version: int, keys=None, **kw) -> list[tuple[str, dict]]:
    """[(topic, payload)] of a release (dev release key unless keys)."""
    from export.bundle import DEV_SIGNING_KEY
    from export.commands.release_cmd import announcement
    return announcement(slot, bundle_dir, version, keys or [DEV_SIGNING_KEY], **kw)


def release_announcement(slot: str, bundle_dir, version: int, keys=None, **kw) -> dict:
    return release_messages(slot, bundle_dir, version, keys, **kw)[-1][1]


__all__ = ["resigned_bundle", "release_messages", "release_announcement", "DEFAULT_BATTERY_BUNDLE",
           "DEFAULT_COMPLIANCE_BUNDLE", "T"]
