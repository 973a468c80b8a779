"""Signals alerting sends, so the live pages can show alerts without alerting knowing them."""

from blinker import Namespace

_signals = Namespace()

# Sent when a violation fires (first time or repeat) or resolves, with `event`: a dict of
# service, level, event ("firing" | "resolved"), current_count, threshold and at.
alert_changed = _signals.signal("alert-changed")
