"""``python -m dashboards build --out DIR`` (same subcommands as ``fumewatch dashboards``)."""

import sys

from ingest.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["dashboards", *sys.argv[1:]]))
