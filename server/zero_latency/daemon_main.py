"""`python -m zero_latency.daemon_main --fingerprint F`: how a client starts the daemon in the
background. Straight to `daemon.run`, without the CLI's imports (argparse, the settings parser)
on the start-up path: the daemon that `zl serve` starts must answer `initialize` soon (see
benchmarks/cold_start.py). `zl daemon run` (the CLI) stays the way to run one by hand."""

from __future__ import annotations

import logging
import sys


def main(argv: list[str]) -> int:
    from .daemon import run

    fingerprint = argv[argv.index("--fingerprint") + 1] if "--fingerprint" in argv else None
    handler = logging.StreamHandler(sys.stderr)  # the daemon's log file, as `zl daemon run`
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # Our INFO lines; a library's from WARNING up (as `zl daemon run`: cli.py).
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.getLogger("zero_latency").setLevel(logging.INFO)
    try:
        return run(None, fingerprint)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
