"""Benchmarks that check ipychat costs nothing a user can notice: `python benchmarks/run.py`.

Each module measures one cost against a baseline in the same run on the same machine, so the
reported numbers are ratios and differences that travel between machines, unlike raw timings.
"""
