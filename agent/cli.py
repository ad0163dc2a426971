"""`trey-agent` entry point. Each subcommand lives in agent/commands/<name>.py and
exposes `configure(parser)` and `main(args) -> int`; modules load lazily so e.g.
`trey-agent classify` never pays for the CAN stack."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

COMMANDS = {
    "run": ("agent.commands.run", "run the agent daemon (CAN -> daily rows -> models -> alerts -> HMI/MQTT)"),
    "history": ("agent.commands.history", "print the stored daily rows"),
    "forecast": ("agent.commands.forecast", "forecast battery end of life from a daily-history CSV"),
    "classify": ("agent.commands.classify", "classify component notes for compliance"),
    "demo": ("agent.commands.demo", "virtual car + agent + HMI in one process, accelerated"),
    "replay": ("agent.commands.replay", "a recorded CAN log through the agent pipeline, at full speed"),
    "map": ("agent.commands.map", "signal-map tools: import-kuksa FILE.json"),
}


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def build_parser(prog: str, commands: dict) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_) in commands.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
    return parser


def dispatch(prog: str, commands: dict, argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(prog, commands)
    # Configure only the chosen subcommand's arguments (keeps start-up cheap).
    sub_action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    words = [w for i, w in enumerate(argv) if not w.startswith("-") and (i == 0 or argv[i - 1] != "--log-level")]
    if words and words[0] in sub_action.choices:
        importlib.import_module(commands[words[0]][0]).configure(sub_action.choices[words[0]])
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    return run_command(args._module, args)


def run_command(module: str, args) -> int:
    """Run a subcommand module's main(args) (shared by trey-agent and trey-export)."""
    try:
        return int(importlib.import_module(module).main(args) or 0)
    except BrokenPipeError:
        # the reader went away (`... | head`): not an error; keep the exit quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def main(argv=None) -> int:
    return dispatch("trey-agent", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
