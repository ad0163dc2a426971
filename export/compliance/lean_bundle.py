"""A compliance bundle's model rewritten in the lean graph (onnx_export.lean_facts_graph):
the same weights, the same output bits, fewer ONNX nodes — a new signed bundle version
without a retrain (a retrain on another machine trains other weights: train.py's README).

    trey-export bundle lean agent/models/compliance --out agent/models/compliance --version 2.2.1

Nothing is written unless the lean graph gives bit-identical outputs on the held-out notes
(export/compliance/evaluate.heldout_sets) and the agent's classifier gives the same results
with `why` on them."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np


class LeanError(ValueError):
    pass


def next_patch(version: str) -> str:
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise LeanError(f"cannot derive the next version from {version!r}: give --version")
    return f"{parts[0]}.{parts[1]}.{int(parts[2]) + 1}"


def rebuild_lean(src: str | Path, out: str | Path, version: str | None = None, key_path: str | None = None,
                 trusted=None, notes: int = 300) -> dict:
    """Verify `src`, rebuild its model lean, check it, write the signed bundle to `out`."""
    from agent.bundle import verify_bundle
    from agent.classify import ComplianceClassifier
    from agent.tokenizer import Tokenizer
    from export.bundle import build_bundle
    from export.compliance import onnx_export as OX
    from export.compliance.evaluate import heldout_sets

    b = verify_bundle(src, trusted)
    m = json.loads(json.dumps(b.manifest))
    if m.get("kind") != "note-fact-reader":
        raise LeanError(f"{src}: not a compliance fact bundle (kind {m.get('kind')!r})")
    try:
        lean = OX.lean_facts_graph(b.model_bytes)
    except ValueError as exc:
        raise LeanError(f"{src}: {exc}") from None
    texts = [r["text"] for recs in heldout_sets(notes).values() for r in recs]
    tok = Tokenizer.from_manifest(m["preprocessing"]["tokenizer"])
    rows = {L: np.asarray(x, np.int32) for L, (_, x) in tok.encode_groups(texts).items()}
    if not OX.same_outputs(b.model_bytes, lean, len(tok.vocab), rows):
        raise LeanError("the lean graph's outputs differ on the held-out notes: nothing written")
    mp = m.get("decision", {}).get("min_p_complies", 0.5)
    a = ComplianceClassifier(b.model_bytes, tok, min_p_complies=mp).classify(texts)
    c = ComplianceClassifier(lean, tok, min_p_complies=mp).classify(texts)
    if a != c:
        n = sum(x != y for x, y in zip(a, c))
        raise LeanError(f"the classifier's results differ on {n} of {len(texts)} notes: nothing written")
    graph, before = OX.graph_info(lean), OX.graph_info(b.model_bytes)["nodes"]
    old_version = m.get("version", "?")
    m["version"] = version or next_patch(old_version)
    for k in ("created", "files", "format"):
        m.pop(k, None)
    m.setdefault("model", {})["graph"] = {
        **graph, "rebuilt_from": {"version": old_version, "nodes": before,
                                  "model_sha256": hashlib.sha256(b.model_bytes).hexdigest()},
        "checked": {"notes": len(texts), "outputs": "bit-identical", "classify_with_why": "identical"}}
    # written beside `out`, then moved in: `out` may be `src`, and a failed write leaves it whole
    out = Path(out)
    if out.exists() and any(out.iterdir()) and (not (out / "manifest.json").is_file()
                                                or any(f.is_dir() for f in out.iterdir())):
        raise LeanError(f"{out}: not a bundle directory (nothing written)")
    tmp = out.with_name(out.name + ".lean-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    build_bundle(tmp, lean, m, key_path=key_path)
    out.mkdir(parents=True, exist_ok=True)
    for f in out.iterdir():
        f.unlink()
    for f in tmp.iterdir():
        f.replace(out / f.name)
    tmp.rmdir()
    return {"bundle": str(out), "version": m["version"], "from": old_version, "nodes": [before, graph["nodes"]],
            "notes_checked": len(texts), "bytes": [len(b.model_bytes), len(lean)]}
