"""Component-note compliance classifier (ONNX Runtime only; runs on the car).

    clf = ComplianceClassifier.from_bundle(verify_bundle(DEFAULT_COMPLIANCE_BUNDLE))
    clf.classify(["manufactured in 1985 made of steel in fair condition"])
    -> [{"compliant": False, "p_noncompliant": 0.999, "why": ["1985", "fair"]}]

Notes are tokenized by agent/tokenizer.py with the vocabulary stored in the verified
bundle manifest (the same code prepared the training data), then scored by the bundle's
int8 model. `why` comes from occlusion: every word of the note is replaced by <unk> in
turn and the change of the model's logit is measured, all variants of a batch in ONE
session run (a 15-word note costs 16 rows of a tiny LSTM, well under a millisecond each).
For a non-compliant note `why` is found greedily: occlude the word whose removal lowers
the logit most, keep it occluded and repeat until the note reads compliant (at most 3
words) — so "1961 ... cast iron ... poor" names all three causes, not just the strongest.
For a compliant note, the words whose removal raises the logit most (what makes it
compliant). Each round is one batched session run over all notes of the call. Logits, not probabilities, are compared because the
float32 sigmoid saturates at 1.0 when two causes are present (e.g. "1985" and "fair").
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from agent.tokenizer import UNK, Tokenizer

WHY_MAX_WORDS = 3
WHY_MIN_LOGIT_DELTA = 1.0     # compliant notes: further words must move the logit this much (e-fold odds)
WHY_MIN_STEP_DELTA = 0.2      # non-compliant notes: a further greedy step must still lower the logit


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
        enc = []                        # per text: (base row, [(surface, first position, n tokens)])
        for text in texts:
            groups = self.tokenizer.word_ids(text)
            flat = [i for _, ids in groups for i in ids]
            pos, spans = L - len(flat), []
            for surface, ids in groups:
                if any(i != self._unk for i in ids):      # an <unk> word cannot matter
                    spans.append((surface, pos, len(ids)))
                pos += len(ids)
            enc.append(([0] * (L - len(flat)) + flat, spans))
        p, logit = self._run(np.asarray([e[0] for e in enc], dtype=np.int32).reshape(-1, L))
        bad = p >= self.threshold
        whys: list[list[str]] = [[] for _ in texts]
        if explain and len(texts):
            self._explain(enc, logit, bad, whys)
        return [{"compliant": not bool(b), "p_noncompliant": round(float(q), 6), "why": w}
                for q, b, w in zip(p, bad, whys)]

    def _explain(self, enc, logit, bad, whys) -> None:
        """Occlusion, batched over all notes (one session run per round).
        Non-compliant: greedy — occlude the word that lowers the logit most, keep it
        occluded, repeat (up to WHY_MAX_WORDS) until the note reads compliant, so every cause
        is named even when several are present. Compliant: one round; the words whose
        occlusion raises the logit by >= WHY_MIN_LOGIT_DELTA (at least the strongest)."""
        L = self.tokenizer.max_len
        state = {k: (list(row), list(spans), float(logit[k])) for k, (row, spans) in enumerate(enc) if spans}
        for rnd in range(WHY_MAX_WORDS):
            active = [k for k in state if rnd == 0 or bad[k]]
            rows, owners = [], []
            for k in active:
                row, spans, _ = state[k]
                for j, (_, pos, n) in enumerate(spans):
                    v = list(row)
                    v[pos:pos + n] = [self._unk] * n
                    rows.append(v)
                    owners.append((k, j))
            if not rows:
                return
            vp, vl = self._run(np.asarray(rows, dtype=np.int32).reshape(-1, L))
            per: dict[int, list[tuple[float, int, int]]] = {}
            for r, (k, j) in enumerate(owners):
                base = state[k][2]
                delta = base - vl[r] if bad[k] else vl[r] - base
                per.setdefault(k, []).append((float(delta), j, r))
            done = []
            for k, cands in per.items():
                row, spans, base = state[k]
                cands.sort(key=lambda c: (-c[0], c[1]))
                if not bad[k]:                      # compliant: a single round
                    for rank, (d, j, _) in enumerate(cands[:WHY_MAX_WORDS]):
                        if d <= 0 or (rank and d < WHY_MIN_LOGIT_DELTA):
                            break
                        self._add(whys[k], spans[j][0])
                    done.append(k)
                    continue
                d, j, r = cands[0]
                if d <= 0 or (whys[k] and d < WHY_MIN_STEP_DELTA):
                    done.append(k)
                    continue
                self._add(whys[k], spans[j][0])
                _, pos, n = spans[j]
                row[pos:pos + n] = [self._unk] * n
                del spans[j]
                state[k] = (row, spans, float(vl[r]))
                if vp[r] < self.threshold or not spans:
                    done.append(k)                  # these words alone make it non-compliant
            for k in done:
                state.pop(k, None)
            if not state:
                return

    @staticmethod
    def _add(why: list[str], word: str) -> None:
        if word.lower() not in (x.lower() for x in why):
            why.append(word)

    def info(self) -> dict:
        return {"name": self.name, "version": self.version, "threshold": self.threshold,
                "vocab": len(self.tokenizer.vocab), "max_len": self.tokenizer.max_len}
