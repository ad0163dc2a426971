"""`trey-agent map import-kuksa FILE.json [--dbc DBC] [-o MAP.toml]`: bring an Eclipse Kuksa
dbc2val mapping (VSS JSON) as a trey-edge signal map (agent.kuksa_import). The result is loaded
back against the DBC before it is written, so what is printed is a map the agent accepts.

Exit codes: 0 written; 2 an unreadable file, no usable entry, or a map the DBC refuses.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def configure(parser) -> None:
    sub = parser.add_subparsers(dest="map_command", metavar="ACTION", required=True)
    p = sub.add_parser("import-kuksa", help="convert a Kuksa dbc2val VSS-JSON mapping to a signal map")
    p.add_argument("file", metavar="FILE.json")
    p.add_argument("--dbc", default="", help="the vehicle's DBC (default: the shipped trey DBC)")
    p.add_argument("-o", "--output", default="", help="write the map here (default: stdout)")


def main(args) -> int:
    import tomllib

    from agent.kuksa_import import KuksaImportError, convert, to_toml
    from agent.signal_map import DEFAULT_DBC, SignalMapError, load_dbc, signal_map_from_dict

    dbc = Path(args.dbc) if args.dbc else DEFAULT_DBC
    try:
        doc = json.loads(Path(args.file).read_text(encoding="utf-8"))
        db = load_dbc(dbc)
        entries, notes = convert(doc, db)
        text = to_toml(entries, Path(args.file).name, dbc.name)
        signal_map_from_dict(db, tomllib.loads(text), args.output or "<import>", str(dbc))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KuksaImportError, SignalMapError) as exc:
        print(f"trey-agent map import-kuksa: {exc}", file=sys.stderr)
        return 2
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {len(entries)} signal(s) to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
