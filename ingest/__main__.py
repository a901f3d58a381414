"""``python -m ingest [flags]`` runs the ingest service (same flags as ``fumewatch ingest``)."""

import sys

from ingest.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["ingest", *sys.argv[1:]]))
