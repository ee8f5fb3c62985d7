"""The shared host scenarios: one set, run on every host module (see harness.py)."""
