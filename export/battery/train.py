"""Training loop of the global LSTM: Adam, MSE in cycles plus an MSE on the 30-day sum,
early stopping on validation batteries, fixed seeds, a progress bar, a wall-clock cap.

Why the sum term: the failure rule reads lifetime + sum(forecast), and daily errors of one
window are correlated (a level mis-read shifts all 30 days), so plain daily MSE under-weighs
the error the alert actually sees. The sum term is scaled by 1/H so that, for independent
daily errors, both terms have the same size; `sum_weight` 0 gives plain daily MSE."""

from __future__ import annotations

import copy
import logging
import time

import numpy as np
import torch

from .data import WindowSet
from .models import LSTMForecaster, predict

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_lstm(train: WindowSet, val: WindowSet, hidden: int = 64, layers: int = 1, lr: float = 1e-3,
               batch: int = 256, max_epochs: int = 30, patience: int = 4, seed: int = 0,
               time_budget_s: float | None = None, weight_decay: float = 1e-5, dropout: float = 0.0, lstm_steps: int = 56,
               lstm_input: str = "daily",
               sum_weight: float = 1.0, progress: bool = True, on_epoch=None) -> tuple[LSTMForecaster, list[dict]]:
    """-> (best model by validation loss, per-epoch history [{epoch, train_loss, val_loss}]).
    max_epochs/patience decide when training ends (reproducible); time_budget_s is a cap for
    shared machines and, when it cuts training short, the result depends on the machine."""
    from tqdm import tqdm
    seed_everything(seed)
    model = LSTMForecaster(train.x.shape[2], hidden, layers, train.y.shape[1], dropout, window=train.x.shape[1],
                           lstm_steps=lstm_steps, lstm_input=lstm_input)
    model.warm_start(train.x, train.level, train.y)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
    # losses in cycles^2, divided by the training targets' variance so numbers are readable
    norm = float(np.var(train.y)) or 1.0
    h = train.y.shape[1]

    def objective(p, t):             # torch or numpy alike
        return (((p - t) ** 2).mean() + sum_weight * ((p.sum(1) - t.sum(1)) ** 2).mean() / h) / norm

    x, lv, y = (torch.from_numpy(a) for a in (train.x, train.level, train.y))
    gen = torch.Generator().manual_seed(seed)
    # epoch 0 = the warm-started linear forecaster: training must beat it to be kept
    best_loss = float(objective(predict(model, val.x, val.level), val.y))
    best, bad, history = copy.deepcopy(model.state_dict()), 0, [{"epoch": 0, "train_loss": None, "val_loss": best_loss}]
    t0 = time.monotonic()
    bar = tqdm(range(1, max_epochs + 1), desc="lstm", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(perm), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = objective(model(x[idx], lv[idx]), y[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += float(loss) * len(idx)
        train_loss = total / len(perm)
        val_loss = float(objective(predict(model, val.x, val.level), val.y))
        sched.step(val_loss)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
        if on_epoch:
            on_epoch(history[-1])
        bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}")
        log.info("epoch %d train %.5f val %.5f", epoch, train_loss, val_loss)
        if val_loss < best_loss - 1e-5:
            best, best_loss, bad = copy.deepcopy(model.state_dict()), val_loss, 0
        else:
            bad += 1
            if bad >= patience:
                break
        if time_budget_s and time.monotonic() - t0 > time_budget_s:
            log.info("time budget reached after epoch %d", epoch)
            break
    bar.close()
    model.load_state_dict(best)
    model.eval()
    return model, history
