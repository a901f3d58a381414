"""Detection: readings -> 10-minute windows (window.py; business hours in hours.py) -> events (detector.py,
streaming, with its per-device state in state.py; replay.py, vectorised, with its events in replay_events.py).
"""
