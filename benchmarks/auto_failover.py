"""pg_auto_failover for real: kill -9 the primary machine under opt-out and check load.

Makes a monitor and data nodes with ``pg_autoctl`` (Debian
``postgresql-15-auto-failover``; tests/replication/autofailover.py: temporary
folders owned by postgres, free ports of 127.0.0.1, the monitor's health
checks and demote timeout tuned to seconds, listed there), runs the app on
the multi-host URL ``pg_autoctl show uri`` prints (the user added) with the
check spool on, SIGKILLs the primary's keeper and server together, lets the
monitor fail over, and prints: acknowledged opt-outs and how many of them
the new primary lacks, seconds without an acknowledged write and without an
answered check, checks answered meanwhile (from a standby, spooled) and
whether every answered check's log row reached the new primary once.

    .venv/bin/python benchmarks/auto_failover.py [--nodes 3] [--before 3] [--after 3] [--runs 1] [--defaults]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.replication.autofailover import (
    AUTOCTL,
    KEEPER_TUNING,
    MONITOR_TUNING,
    formation,
    under_load,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--before", type=float, default=3.0)
    parser.add_argument("--after", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--defaults", action="store_true", help="pg_auto_failover's own timeouts")
    args = parser.parse_args()
    if AUTOCTL is None:
        raise SystemExit("pg_autoctl is not installed (Debian postgresql-15-auto-failover)")
    if not args.defaults:
        print("tuned:", MONITOR_TUNING, KEEPER_TUNING)
    for run in range(args.runs):
        with formation(nodes=args.nodes, tuned=not args.defaults) as f:
            r = under_load(
                f,
                Path(tempfile.mkdtemp(prefix="anning-autofailover-app-")),
                args.before,
                args.after,
            )
        print(
            f"run {run + 1} ({args.nodes} nodes): {r['acknowledged']} opt-outs acknowledged, "
            f"{r['lost']} lost on the new primary; node {r['old']} killed, node {r['new']} "
            f"promoted {r['promoted_s']:.1f} s later, the app on it through the URL: "
            f"{r['app_port'] == r['new_port']}; {r['writes_down_s']:.1f} s without an "
            f"acknowledged write, {r['checks_down_s']:.1f} s without an answered check; "
            f"{r['checks_in_outage']} checks answered while writes were down, "
            f"{r['checks_spooled']} spooled; {r['checks']} checks answered in all "
            f"({r['checks_wrong']} wrong), {r['check_rows_lost']} log rows missing and "
            f"{r['check_rows_doubled']} doubled after the replay; failures: {r['check_failures']}"
        )


if __name__ == "__main__":
    main()
