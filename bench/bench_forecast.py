"""Battery forecast latency: the agent path (clean + features + ORT int8) per battery, and
the model alone — ORT int8 (shipped) vs ORT fp32 vs torch eager on the same windows, batch
1 and 256, p50/p99; model sizes int8 vs fp32. Single-threaded (a head unit's budget).

Uses artifacts/battery/{model_fp32.onnx,model.pt} from the last `trey-export train battery`
when they match the shipped bundle; otherwise trains a small stand-in model (same code
path) into a temp dir and says so."""

from __future__ import annotations

import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _pct(ts) -> str:
    a = np.asarray(ts) * 1e3
    return f"p50 {np.percentile(a, 50):8.3f} ms   p99 {np.percentile(a, 99):8.3f} ms"


def _time(fn, n: int) -> list[float]:
    fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    import onnxruntime as ort
    import torch

    from agent.bundle import DEFAULT_BATTERY_BUNDLE, verify_bundle
    from agent.cleaning import clean_history
    from agent.forecast import BatteryForecaster
    from agent.forecast_features import day_matrix, window_inputs
    from export.battery.fleet import generate_fleet
    from export.battery.models import build

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench_forecast_"))
    bundle = verify_bundle(DEFAULT_BATTERY_BUNDLE)
    art = ROOT / "artifacts" / "battery"
    note = "artifacts of the shipped bundle's training run"
    if not (art / "model.pt").exists() or json.loads((art / "params.json").read_text()) != bundle.manifest["preprocessing"]:
        from export.battery.pipeline import TrainConfig, run_training
        note = "stand-in model (no matching artifacts/battery): small training run"
        art = tmp / "art"
        run_training(TrainConfig(out=str(tmp / "bundle"), batteries=40, seed=5, artifacts=str(art), window=56,
                                 train_stride=7, max_epochs=2, lstm_budget_s=10, search_budget_s=4,
                                 search_lstm_epochs=1, threads=1, mlflow=False, progress=False))
        bundle = verify_bundle(tmp / "bundle")
    print(f"models: {note}")
    fc = BatteryForecaster.from_bundle(bundle)
    params = bundle.manifest["preprocessing"]
    ckpt = torch.load(art / "model.pt", weights_only=False)
    tmodel = build(ckpt["config"]) if ckpt["config"] else None
    if tmodel is not None:
        tmodel.load_state_dict(ckpt["state_dict"])
        tmodel.eval()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    fp32 = ort.InferenceSession(str(art / "model_fp32.onnx"), opts, providers=["CPUExecutionProvider"])
    int8 = fc.session

    generate_fleet(300, 5, tmp / "fleet")
    with open(tmp / "fleet" / "battery_history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_bat: dict[str, list] = {}
    for r in rows:
        by_bat.setdefault(r["Battery_ID"], []).append(r)
    hist = [h for h in clean_history(rows).batteries.values() if len(h) >= params["window"]]
    xs, ls = zip(*(window_inputs(day_matrix(h.tail(params["window"])), np.array([params["window"] - 1]), params)
                   for h in hist[:256]))
    x, lv = np.concatenate(xs), np.concatenate(ls)
    print(f"window {params['window']} days x {x.shape[2]} features, model kind {bundle.manifest.get('model_kind')}")

    # agent path: raw rows of one battery (a ~4-year history) -> answer
    one = max(by_bat.values(), key=len)
    ts = _time(lambda: fc.forecast(one), 50)
    print(f"agent path, 1 battery ({len(one)} raw rows -> clean -> features -> ORT int8): {_pct(ts)}")
    last_year = one[-365:]
    ts = _time(lambda: fc.forecast(last_year), 100)
    print(f"agent path, 1 battery (last 365 rows):                                  {_pct(ts)}")
    some = [r for b in list(by_bat)[:256] for r in by_bat[b]]
    t = time.perf_counter()
    fc.forecast_all(some)
    dt_all = time.perf_counter() - t
    print(f"agent path, {min(256, len(by_bat))} batteries in one call ({len(some)} rows): "
          f"{dt_all * 1e3:.0f} ms total, {dt_all / min(256, len(by_bat)) * 1e3:.2f} ms per battery")

    for b in (1, 256):
        xb, lb = x[:b], lv[:b]
        n = 200 if b == 1 else 30
        r8 = _time(lambda: int8.run(None, {"window": xb, "level": lb}), n)
        r32 = _time(lambda: fp32.run(None, {"window": xb, "level": lb}), n)
        line = f"batch {b:3d}: ORT int8 {_pct(r8)} | ORT fp32 {_pct(r32)}"
        if tmodel is not None:
            tx, tl = torch.from_numpy(xb), torch.from_numpy(lb)
            with torch.no_grad():
                rt = _time(lambda: tmodel(tx, tl), n)
            line += f" | torch eager {_pct(rt)}"
        print(line)
    s8 = len(bundle.model_bytes)
    s32 = (art / "model_fp32.onnx").stat().st_size
    total = sum(len(v) for v in bundle.files.values())
    print(f"model.onnx int8 {s8 / 1024:.1f} KiB vs fp32 {s32 / 1024:.1f} KiB ({s8 / s32:.2f}x); "
          f"whole bundle {total / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
