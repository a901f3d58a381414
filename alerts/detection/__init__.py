"""Detection: readings -> 10-minute windows (window.py) -> events (detector.py, streaming; replay.py, vectorised)."""
