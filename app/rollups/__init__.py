"""Counts by time bucket: the tiers (minute, hour, day), how they are kept, and read."""
