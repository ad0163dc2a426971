"""Component-note compliance classifier (ONNX Runtime only; runs on the car).

    clf = ComplianceClassifier.from_bundle(verify_bundle(DEFAULT_COMPLIANCE_BUNDLE))
    clf.classify(["manufactured in 1985 made of steel in fair condition"])
    -> [{"compliant": False, "p_noncompliant": 0.999, "why": ["1985", "fair"]}]

Notes are tokenized by agent/tokenizer.py with the vocabulary stored in the verified
bundle manifest (the same code prepared the training data), then scored by the bundle's
int8 model. `why` comes from occlusion: every word of the note is replaced by <unk> in
turn and the change of the model's logit is measured, all variants of a batch in ONE
session run (a 15-word note costs 16 rows of a tiny LSTM, well under a millisecond each).
For a non-compliant note `why` lists the words whose removal lowers the logit most (the
words that make it non-compliant); for a compliant one, the words whose removal raises it
most (what makes it compliant). Logits, not probabilities, are compared because the
float32 sigmoid saturates at 1.0 when two causes are present (e.g. "1985" and "fair").
"""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort

from agent.tokenizer import UNK, Tokenizer

WHY_MAX_WORDS = 3
WHY_MIN_LOGIT_DELTA = 1.0     # a word must move the logit this much to be named (1 = e-fold odds)


class ComplianceClassifier:
    def __init__(self, model_bytes: bytes, tokenizer: Tokenizer, threshold: float = 0.5,
                 name: str = "compliance", version: str = "?", threads: int = 1):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        outs = [o.name for o in self.session.get_outputs()]
        self._out_p = "p_noncompliant" if "p_noncompliant" in outs else outs[0]
        self._out_logit = "logit" if "logit" in outs else None
        self.tokenizer = tokenizer
        self.threshold = float(threshold)
        self.name, self.version = name, version
        self._unk = tokenizer.index[UNK]

    @classmethod
    def from_bundle(cls, bundle, threads: int = 1) -> "ComplianceClassifier":
        """From a VERIFIED agent.bundle.Bundle (the model is built from its verified bytes)."""
        m = bundle.manifest
        try:
            tok = Tokenizer.from_manifest(m["preprocessing"]["tokenizer"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{bundle.source}: not a compliance bundle (no tokenizer): {exc}") from None
        thr = (m.get("decision") or {}).get("threshold", 0.5)
        return cls(bundle.model_bytes, tok, thr, m.get("name", "compliance"), m.get("version", "?"), threads)

    # -- scoring ------------------------------------------------------------------------
    def _run(self, ids: np.ndarray, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """-> (p, logit) per row."""
        ps, ls = [], []
        names = [self._out_p] + ([self._out_logit] if self._out_logit else [])
        for i in range(0, len(ids), batch):
            out = self.session.run(names, {self.input: ids[i:i + batch]})
            p = out[0].reshape(-1).astype(np.float64)
            ps.append(p)
            if self._out_logit:
                ls.append(out[1].reshape(-1).astype(np.float64))
            else:
                q = np.clip(p, 1e-7, 1 - 1e-7)
                ls.append(np.log(q / (1 - q)))
        if not ps:
            return np.zeros(0), np.zeros(0)
        return np.concatenate(ps), np.concatenate(ls)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        ids = np.asarray(self.tokenizer.encode_batch(texts), dtype=np.int32).reshape(-1, self.tokenizer.max_len)
        return self._run(ids)[0]

    def classify(self, texts: list[str], explain: bool = True) -> list[dict]:
        """[{"compliant": bool, "p_noncompliant": float, "why": [words]}] in input order."""
        L = self.tokenizer.max_len
        rows: list[list[int]] = []
        spans = []                      # per text: (first row, [surface words])
        for text in texts:
            groups = self.tokenizer.word_ids(text)
            flat = [i for _, ids in groups for i in ids]
            pad = L - len(flat)
            base = [0] * pad + flat
            start = len(rows)
            rows.append(base)
            surfaces = []
            if explain:
                pos = pad
                for surface, ids in groups:
                    # Occlude the whole word (a year is three tokens) with <unk>.
                    v = list(base)
                    for k in range(len(ids)):
                        v[pos + k] = self._unk
                    pos += len(ids)
                    if base == v:       # word was already <unk>: cannot matter
                        continue
                    rows.append(v)
                    surfaces.append(surface)
            spans.append((start, surfaces))
        p, logit = self._run(np.asarray(rows, dtype=np.int32).reshape(-1, L))
        out = []
        for start, surfaces in spans:
            pn = float(p[start])
            bad = pn >= self.threshold
            why: list[str] = []
            if explain and surfaces:
                deltas = logit[start] - logit[start + 1:start + 1 + len(surfaces)]
                if not bad:
                    deltas = -deltas     # for a compliant note: removal raises the logit
                order = np.argsort(-deltas, kind="stable")
                for j in order:
                    if len(why) >= WHY_MAX_WORDS or deltas[j] <= 0:
                        break
                    if deltas[j] < WHY_MIN_LOGIT_DELTA and why:
                        break
                    w = surfaces[j]
                    if w.lower() not in (x.lower() for x in why):
                        why.append(w)
            out.append({"compliant": not bad, "p_noncompliant": round(pn, 6) if math.isfinite(pn) else pn,
                        "why": why})
        return out

    def info(self) -> dict:
        return {"name": self.name, "version": self.version, "threshold": self.threshold,
                "vocab": len(self.tokenizer.vocab), "max_len": self.tokenizer.max_len}
