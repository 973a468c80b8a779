"""Signals ingest sends, so later stages (alerts, live tail) react without ingest knowing them."""

from blinker import Namespace

_signals = Namespace()

# Sent after a batch is committed, with `records`: the list of stored Records.
lines_stored = _signals.signal("lines-stored")
