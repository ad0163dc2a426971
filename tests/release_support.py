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


__all__ = ["resigned_bundle", "scaled_battery_bundle", "scaled_bundle", "lenient_compliance_bundle", "nan_compliance_bundle", "bundle_files", "shadow_release", "release_messages", "release_announcement", "DEFAULT_BATTERY_BUNDLE",
           "DEFAULT_COMPLIANCE_BUNDLE", "T"]


def scaled_bundle(tmp: Path, version: str, factor: float, source=DEFAULT_BATTERY_BUNDLE,
                  outputs: tuple[str, ...] | None = None, add: list[float] | None = None) -> Path:
    """A shipped bundle with model outputs (default: the first) multiplied by `factor`, then
    `add` added (broadcast) — a different model for shadow evaluation; factor NaN = a model
    failing in service."""
    import onnx
    from onnx import TensorProto, helper
    d = resigned_bundle(tmp, version, source=source)
    m = onnx.load_from_string((d / "model.onnx").read_bytes())
    for out in outputs or (m.graph.output[0].name,):
        for node in m.graph.node:
            node.output[:] = [f"{out}_raw" if o == out else o for o in node.output]
        m.graph.initializer.append(helper.make_tensor(f"{out}_factor", TensorProto.FLOAT, [1], [factor]))
        if add is None:
            m.graph.node.append(helper.make_node("Mul", [f"{out}_raw", f"{out}_factor"], [out]))
        else:
            m.graph.initializer.append(helper.make_tensor(f"{out}_add", TensorProto.FLOAT, [len(add)], add))
            m.graph.node.append(helper.make_node("Mul", [f"{out}_raw", f"{out}_factor"], [f"{out}_scaled"]))
            m.graph.node.append(helper.make_node("Add", [f"{out}_scaled", f"{out}_add"], [out]))
    (d / "model.onnx").write_bytes(m.SerializeToString())
    from export.bundle import sign_dir
    sign_dir(d)
    return d


# The compliance bundle's three fact heads (violates / complies / not_stated probabilities).
FACT_HEADS = ("year", "material", "condition")


def lenient_compliance_bundle(tmp: Path, version: str) -> Path:
    """A compliance model whose every head says "complies": a shadow that disagrees with the
    live model on every non-compliant note."""
    # logits (0, 5, 0): p(complies) 0.99, over the bundle's min_p_complies bar (agent/regulation.read_fact)
    return scaled_bundle(tmp, version, 0.0, DEFAULT_COMPLIANCE_BUNDLE, FACT_HEADS, add=[0.0, 5.0, 0.0])


def nan_compliance_bundle(tmp: Path, version: str) -> Path:
    return scaled_bundle(tmp, version, float("nan"), DEFAULT_COMPLIANCE_BUNDLE, FACT_HEADS)


def scaled_battery_bundle(tmp: Path, version: str, factor: float) -> Path:
    return scaled_bundle(tmp, version, factor)


def bundle_files(d) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in Path(d).iterdir() if f.is_file()}


def shadow_release(tmp: Path, slot: str, d, version: int = 1, promote: dict | None = None):
    """A verified agent.release_metadata.Release marking bundle dir `d` as a shadow release."""
    from agent.release_metadata import TrustStore
    from export.bundle import DEV_SIGNING_KEY, tar_bundle
    from export.release import release_doc
    doc = release_doc(slot, version, tar_bundle(d), {"name": "x", "version": "x"}, [DEV_SIGNING_KEY],
                      shadow=True, promote=promote)
    return TrustStore(Path(tmp) / f"trust-{slot}-{version}").check_release(doc, slot)
