"""Enforcement: the ladder (ladder.py: education -> warning -> enforcement case) and notices (notify/, templates/)."""
