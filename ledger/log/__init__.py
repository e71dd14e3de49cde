"""Log backends: one interface (`base.py`), one module per engine (`embedded.py`, later `kafka.py`).

Nothing outside this package imports the SQLite recorder or kafka-python.
"""
