"""Alert lifecycle in the state DB: raised -> updated -> acknowledged -> cleared, no
duplicates, change hooks inside the transaction, survives reopening the store."""

from __future__ import annotations


import pytest

from agent.alerts import AlertError, Alerts
from agent.store import StateStore


def _battery(alerts, days, vehicle_date="2024-01-01"):
    return alerts.raise_or_update(
        "battery:B1", "battery", "warning", "Battery service needed",
        f"Battery expected to reach end of life in about {days} days — schedule a service appointment",
        {"days_to_rated": days}, vehicle_date=vehicle_date)


def test_lifecycle_and_hooks(tmp_path):
    store = StateStore(tmp_path / "state")
    alerts = Alerts(store)
    in_tx, after = [], []
    alerts.add_change_hook(lambda conn, a: in_tx.append((conn.in_transaction, a["change"], a["state"])))
    alerts.add_listener(lambda a: after.append(a["change"]))

    a, change = _battery(alerts, 20)
    assert change == "raised" and a["state"] == "raised" and a["kind"] == "battery"
    assert a["raised_vehicle_date"] == "2024-01-01"
    same, change = _battery(alerts, 20)
    assert change is None and same["id"] == a["id"]            # same content: nothing happens
    b, change = _battery(alerts, 19, "2024-01-02")
    assert change == "updated" and b["id"] == a["id"] and b["state"] == "updated"
    assert b["raised_vehicle_date"] == "2024-01-01" and b["vehicle_date"] == "2024-01-02"
    c = alerts.acknowledge(a["id"], by="driver")
    assert c["state"] == "acknowledged" and c["acknowledged_by"] == "driver"
    assert alerts.acknowledge(a["id"])["state"] == "acknowledged"   # idempotent, no extra change
    d, change = _battery(alerts, 18, "2024-01-03")
    assert change == "updated" and d["state"] == "acknowledged"  # not nagged again
    e = alerts.clear("battery:B1")
    assert e["state"] == "cleared" and alerts.clear("battery:B1") is None
    with pytest.raises(AlertError):
        alerts.acknowledge(a["id"])
    with pytest.raises(KeyError):
        alerts.acknowledge(999)
    f, change = _battery(alerts, 10, "2024-02-01")               # condition back: raised again
    assert change == "raised" and f["id"] == a["id"] and f["state"] == "raised"

    expected = ["raised", "updated", "acknowledged", "updated", "cleared", "raised"]
    assert [c for _, c, _ in in_tx] == expected and after == expected
    assert all(flag for flag, _, _ in in_tx)                       # hooks ran inside the transaction
    assert len(alerts.list()) == 1


def test_failing_hook_rolls_back_the_change(tmp_path):
    alerts = Alerts(StateStore(tmp_path / "state"))

    def boom(conn, alert):
        raise RuntimeError("outbox full")

    alerts.add_change_hook(boom)
    with pytest.raises(RuntimeError):
        _battery(alerts, 5)
    assert alerts.list() == []       # the alert and its outbox entry commit together or not at all


def test_alerts_survive_reopen(tmp_path):
    store = StateStore(tmp_path / "state")
    alerts = Alerts(store)
    a, _ = _battery(alerts, 12)
    alerts.raise_or_update("compliance:V:alternator", "compliance", "warning", "Alternator out of compliance",
                           "m", {"why": ["1985"]})
    alerts.acknowledge(a["id"])
    if hasattr(store, "close"):
        store.close()
    again = Alerts(StateStore(tmp_path / "state"))
    got = {x["key"]: x for x in again.list()}
    assert got["battery:B1"]["state"] == "acknowledged"
    assert got["compliance:V:alternator"]["explanation"] == {"why": ["1985"]}
    assert again.raise_or_update("battery:B1", "battery", "warning", "Battery service needed",
                                 a["message"], a["explanation"])[1] is None
    assert [x["kind"] for x in again.list(active_only=True, kind="compliance")] == ["compliance"]


def test_bad_kind_rejected(tmp_path):
    alerts = Alerts(StateStore(tmp_path / "state"))
    with pytest.raises(AlertError):
        alerts.raise_or_update("x", "tyres", "warning", "t", "m", {})
    with pytest.raises(AlertError):
        alerts.raise_or_update("x", "battery", "apocalyptic", "t", "m", {})
