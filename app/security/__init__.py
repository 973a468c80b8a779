"""Protections that cut across areas: outbound request guards, and (later) access control."""
