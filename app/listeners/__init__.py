"""Non-HTTP receivers: syslog (RFC 5424 / RFC 3164) and GELF over UDP and TCP.

`flask --app app listen` runs them (see server.py); each received message becomes a log
object that goes, in batches, through the same ingest path as POST /api/logs.
"""
