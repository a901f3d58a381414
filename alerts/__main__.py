"""``python -m alerts [flags]`` runs the alerts service (same flags as ``fumewatch alerts``)."""

import sys

from ingest.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["alerts", *sys.argv[1:]]))
