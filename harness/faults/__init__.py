"""Faults the harness injects and the evidence that they happened.

Each kind of fault (a live power cut, crash states rebuilt from a write
log, I/O errors, a watchdog) is one module here behind a small interface.
"""
