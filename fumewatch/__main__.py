"""``python -m fumewatch COMMAND ...``: the same as the ``fumewatch`` command."""

from fumewatch.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
