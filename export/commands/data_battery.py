"""trey-export data battery --batteries N --seed S --out DIR

Writes DIR/battery_history.csv (raw seed schema, with the original data's defects),
DIR/battery_truth.csv and DIR/fleet_params.json (evaluation only: true and expected usage)."""

from __future__ import annotations

import json


def configure(p) -> None:
    from export.battery.fleet import FLEET_SIZE   # same default fleet as training
    p.add_argument("--batteries", type=int, default=FLEET_SIZE, help=f"number of batteries (default {FLEET_SIZE})")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", required=True, help="output directory")


def main(args) -> int:
    from export.battery.fleet import generate_fleet
    if args.batteries < 1:
        raise SystemExit("--batteries must be >= 1")
    print(json.dumps(generate_fleet(args.batteries, args.seed, args.out)))
    return 0
