"""Turning what services send into stored lines: parse, normalise, write with COPY."""
