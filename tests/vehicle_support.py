"""Helpers for the real-vehicle tests: small generated DBCs and signal maps written to tmp dirs."""

from __future__ import annotations

from pathlib import Path

DBC_HEAD = 'VERSION ""\n\nNS_ :\n\nBS_:\n\nBU_: ECU\n\n'


def write_dbc(path: Path, body: str) -> Path:
    path.write_text(DBC_HEAD + body.strip() + "\n")
    return path


def write_map(path: Path, entries: dict) -> Path:
    """entries: canonical -> {key: value}; values are strings, numbers or dicts (inline tables)."""
    out = []
    for name, spec in entries.items():
        out.append(f'[signals."{name}"]')
        for k, v in spec.items():
            if isinstance(v, dict):
                inner = ", ".join(f'{kk} = {_lit(vv)}' for kk, vv in v.items())
                out.append(f"{k} = {{ {inner} }}")
            else:
                out.append(f"{k} = {_lit(v)}")
        out.append("")
    path.write_text("\n".join(out))
    return path


def _lit(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_lit(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_lit(x)}" for k, x in v.items()) + " }"
    return repr(v)
