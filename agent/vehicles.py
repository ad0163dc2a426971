"""Shipped vehicle profiles: a production DBC + its signal map, as package data
(agent/data/vehicles/, with the DBCs' licence). `[can] profile = "vw_mqb"` selects one."""

from __future__ import annotations

from pathlib import Path

from agent.signal_map import DATA_DIR

VEHICLES_DIR = DATA_DIR / "vehicles"
PROFILES = {
    "vw_mqb": ("vw_mqb.dbc", "vw_mqb.toml"),
    "bmw_e9x_e8x": ("bmw_e9x_e8x.dbc", "bmw_e9x_e8x.toml"),
}


def profile_paths(name: str) -> tuple[Path, Path]:
    """(DBC, signal map) of a shipped profile; KeyError names the known ones."""
    try:
        dbc, smap = PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown vehicle profile {name!r} (known: {', '.join(sorted(PROFILES))})") from None
    return VEHICLES_DIR / dbc, VEHICLES_DIR / smap
