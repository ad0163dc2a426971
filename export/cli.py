"""`trey-export` entry point (cloud side). Subcommands are "GROUP ACTION" pairs living in
export/commands/; each module exposes `configure(parser)` and `main(args) -> int`."""

from __future__ import annotations

import argparse
import importlib
import sys

from agent.cli import run_command, setup_logging

GROUPS = {
    "data": {
        "battery": ("export.commands.data_battery", "generate a raw battery fleet history (seed schema, with defects)"),
        "compliance": ("export.commands.data_compliance", "generate labelled technician notes and vehicle specs"),
    },
    "train": {
        "battery": ("export.commands.train_battery", "model search + LSTM forecaster -> signed int8 ONNX bundle"),
        "compliance": ("export.commands.train_compliance", "Keras LSTM note classifier -> signed int8 ONNX bundle"),
    },
    "bundle": {
        "keygen": ("export.commands.bundle_cmd", "generate an ed25519 signing key pair"),
        "sign": ("export.commands.bundle_cmd", "hash files into manifest.json and sign it"),
        "verify": ("export.commands.bundle_cmd", "verify a bundle against trusted keys"),
        "tar": ("export.commands.bundle_cmd", "pack a bundle directory into a .tar"),
        "lean": ("export.commands.bundle_cmd", "rewrite a compliance bundle's model in the lean graph (same bits)"),
    },
    "keys": {
        "init": ("export.commands.keys_cmd", "start a release root of trust (root keys + threshold, release keys)"),
        "add": ("export.commands.keys_cmd", "next root version with another release key"),
        "revoke": ("export.commands.keys_cmd", "next root version without a key (release or root)"),
        "rotate": ("export.commands.keys_cmd", "next root version with new root keys (signed by old and new)"),
        "publish": ("export.commands.keys_cmd", "publish the root chain retained on the broker"),
    },
    "release": {
        "battery": ("export.commands.release_cmd", "sign + announce a battery bundle release (cohort, shadow)"),
        "compliance": ("export.commands.release_cmd", "sign + announce a compliance bundle release (cohort, shadow)"),
        "report": ("export.commands.release_report", "per-cohort live vs shadow comparison from the fleet's status"),
    },
    "score": {
        "battery": ("export.commands.score_battery", "fleet battery forecasts on Spark (lake or CSV) -> forecasts/"),
        "compliance": ("export.commands.score_compliance", "batch-score vehicle spec documents (JSON lines)"),
    },
    "lake": {
        "compact": ("export.commands.lake_compact", "landing/ -> curated daily/alerts/status tables, exactly once (Spark)"),
        "migrate": ("export.commands.lake_migrate", "move an old CSV ingest dataset into a lake's landing/"),
    },
    "ingest": {
        "run": ("export.commands.ingest", "subscribe to the fleet over MQTT and append to the dataset"),
        "summary": ("export.commands.fleet_summary", "fleet alert summary (CSV + PNG) from ingested data"),
    },
}
# Commands without an action: `trey-export NAME --options`.
SINGLE = {
    "dashboard": ("export.commands.dashboard", "the fleet dashboard: a read-only web app over the lake"),
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `trey-export ingest --broker ...` is shorthand for `trey-export ingest run ...`.
    if argv and argv[0] == "ingest" and (len(argv) == 1 or argv[1] not in GROUPS["ingest"]):
        argv.insert(1, "run")
    parser = argparse.ArgumentParser(prog="trey-export")
    parser.add_argument("--log-level", default="INFO")
    groups = parser.add_subparsers(dest="group", metavar="GROUP", required=True)
    chosen = None
    for gname, actions in GROUPS.items():
        gp = groups.add_parser(gname, help=f"{gname}: {', '.join(actions)}")
        acts = gp.add_subparsers(dest="action", metavar="ACTION", required=True)
        for aname, (module, help_) in actions.items():
            ap = acts.add_parser(aname, help=help_, description=help_)
            ap.set_defaults(_module=module)
            if argv[:1] == [gname] and argv[1:2] == [aname]:
                chosen = (ap, module)
    for name, (module, help_) in SINGLE.items():
        sp = groups.add_parser(name, help=help_, description=help_)
        sp.set_defaults(_module=module)
        if argv[:1] == [name]:
            chosen = (sp, module)
    if chosen:
        mod = importlib.import_module(chosen[1])
        mod.configure(chosen[0])
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        return run_command(args._module, args)
    except Exception as exc:          # a Spark job's error a user can act on: one line, not a JVM trace
        spark = sys.modules.get("export.lake.spark")
        msg = spark.job_error(exc) if spark else None
        if msg is None:
            raise
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
