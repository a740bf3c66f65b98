"""``python -m sandbox.agent --config site.yaml``: run a site agent until interrupted."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from sandbox.agent.config import load_config
from sandbox.runner import IsolationError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.agent", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="site.yaml")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    options = parser.parse_args(argv)
    logging.basicConfig(
        level=options.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_config(options.config)
    except (OSError, ValidationError) as exc:
        print(f"invalid configuration {options.config}: {exc}", file=sys.stderr)
        return 2
    from sandbox.agent.server import serve

    try:
        serve(config)
    except IsolationError as exc:
        print(f"refusing to start: {exc}", file=sys.stderr)
        return 3
    except OSError as exc:
        print(f"cannot start the site agent: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
