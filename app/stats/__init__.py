"""Statistics for pages, sockets, alerts and the JSON API, read from rollups only."""
