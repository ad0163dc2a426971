"""`trey-agent run --config FILE`: the agent daemon (agent.daemon.Agent).

Bus -> daily rows -> both models -> alerts -> in-dash HMI (+ MQTT sync when [mqtt] is set).
Under systemd (Type=notify) it reports READY/WATCHDOG/STATUS/STOPPING on $NOTIFY_SOCKET.
SIGTERM/SIGINT: finish the current frame batch, persist the open accumulators, exit 0.
SIGHUP: reload the config and the model bundles.

Exit codes: 0 stopped cleanly, 1 stopped on a persistent runtime error (the bus stays
broken), 2 bad config or the bus/HMI cannot be opened, 3 the state directory cannot be
created or written (the unit does not restart on 3: RestartPreventExitStatus).
"""

from __future__ import annotations

import logging
import sqlite3
import sys

log = logging.getLogger("agent.run")


def configure(parser) -> None:
    parser.add_argument("--config", required=True, help="agent config (TOML), e.g. /etc/trey/agent.toml")


def main(args) -> int:
    from agent.config import ConfigError, load_config
    from agent.daemon import Agent
    from agent.signal_map import SignalMapError

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"trey-agent run: {exc}", file=sys.stderr)
        return 2
    logging.getLogger().setLevel(cfg.log.level.upper())
    from agent.store_integrity import EXIT_STATE_DIR, StateDirError
    agent = Agent(cfg)
    try:
        agent.start()
    except StateDirError as exc:
        print(f"trey-agent run: cannot start: {exc}", file=sys.stderr)
        agent.shutdown()
        return EXIT_STATE_DIR
    except (SignalMapError, OSError, ValueError, ImportError, sqlite3.Error) as exc:
        # A bus that cannot be opened, an HMI port in use, a bad DBC: say what, exit 2
        # (systemd's Restart=on-failure retries; the message lands in the journal).
        print(f"trey-agent run: cannot start: {exc}", file=sys.stderr)
        agent.shutdown()
        return 2
    try:
        return agent.run()
    except RuntimeError as exc:        # e.g. the bus stayed broken: exit non-zero, systemd restarts us
        log.error("agent stopped on error: %s", exc)
        return 1
