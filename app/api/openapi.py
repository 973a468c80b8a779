"""GET /api/openapi.json: the OpenAPI 3.1 description of the JSON API."""

from flask import jsonify

from app.api import bp
from app.models import LEVELS

ERROR = {"$ref": "#/components/responses/Error"}
ERROR_CONTENT = {"application/json": {"schema": {
    "type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}}}
WINDOW = {"name": "window", "in": "query",
          "schema": {"type": "string", "enum": ["1h", "24h", "7d", "30d"]}}
# The seed's name and values for the window.
TIME_RANGE = {"name": "timeRange", "in": "query",
              "schema": {"type": "string", "enum": ["1h", "1d", "1w"]}}
SERVICE_PATH = {"name": "service", "in": "path", "required": True, "schema": {"type": "string"}}
LEVEL = {"type": "string", "enum": list(LEVELS)}
VIOLATION_PATH = {"name": "violation_id", "in": "path", "required": True,
                  "schema": {"type": "integer"}}


def _ok(description: str, schema: dict | None = None, status: str = "200") -> dict:
    """A success response, JSON unless no schema."""
    body = {"description": description}
    if schema is not None:
        body["content"] = {"application/json": {"schema": schema}}
    return {status: body, "400": ERROR, "401": ERROR, "403": ERROR}


def _query(name: str, schema: dict, description: str = "") -> dict:
    """A query parameter."""
    return {"name": name, "in": "query", "schema": schema, "description": description}


LOG_LINE_IN = {
    "type": "object",
    "description": "a line needs a message, under one of message, msg or log",
    "anyOf": [{"required": ["message"]}, {"required": ["msg"]}, {"required": ["log"]}],
    "properties": {
        "service": {"type": "string", "maxLength": 100},
        "message": {"type": "string"}, "msg": {"type": "string"}, "log": {"type": "string"},
        "level": {"type": ["string", "integer"]},
        "timestamp": {"type": ["string", "number"]},
        "host": {"type": "string"}, "logger": {"type": "string"},
        "trace_id": {"type": "string"},
        "attributes": {"type": "object"},
    },
    "additionalProperties": True,
}
LOG_LINE = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"}, "timestamp": {"type": "string", "format": "date-time"},
        "received_at": {"type": "string", "format": "date-time"},
        "service": {"type": "string"}, "level": LEVEL, "message": {"type": "string"},
        "fingerprint": {"type": ["string", "null"]}, "host": {"type": ["string", "null"]},
        "logger": {"type": ["string", "null"]}, "trace_id": {"type": ["string", "null"]},
        "attributes": {"type": "object"},
    },
}
ALERT_CONFIG_IN = {
    "type": "object",
    "properties": {
        "service": {"type": "string"},
        "error_threshold_per_min": {"type": "integer", "minimum": 1},
        "warning_threshold_per_min": {"type": "integer", "minimum": 1},
        "alert_email": {"type": ["string", "null"], "format": "email"},
        "alert_webhook_url": {"type": ["string", "null"], "format": "uri"},
        "enabled": {"type": "boolean"},
        "repeat_interval_minutes": {"type": "integer", "minimum": 1},
        "for_minutes": {"type": "integer", "minimum": 1, "maximum": 60},
        "min_evaluation_interval_seconds": {"type": "integer", "minimum": 0, "maximum": 3600},
        "rate_limit_count": {"type": "integer", "minimum": 1, "maximum": 1000},
        "rate_limit_minutes": {"type": "integer", "minimum": 1, "maximum": 1440},
    },
}
ALERT_SCOPE = {
    "service": {"type": ["string", "null"], "description": "null or absent: every service"},
    "level": {"type": ["string", "null"], "enum": ["error", "warning", None],
              "description": "null or absent: both levels"},
    "comment": {"type": ["string", "null"], "maxLength": 1000},
}
SILENCE_IN = {
    "type": "object",
    "description": "ends_at or duration_minutes (one of them) is required",
    "properties": {
        **ALERT_SCOPE,
        "starts_at": {"type": "string", "format": "date-time", "description": "default now"},
        "ends_at": {"type": "string", "format": "date-time"},
        "duration_minutes": {"type": "integer", "minimum": 1, "maximum": 129600},
    },
}
WINDOW_IN = {
    "type": "object",
    "description": "weekdays, start_time and end_time are required to create one",
    "properties": {
        **ALERT_SCOPE,
        "weekdays": {"type": "array", "minItems": 1, "items": {
            "type": ["integer", "string"], "description": "0 (Monday) to 6, or mon, monday"}},
        "start_time": {"type": "string", "pattern": "^[0-2]?[0-9]:[0-5][0-9]$"},
        "end_time": {"type": "string", "pattern": "^[0-2]?[0-9]:[0-5][0-9]$",
                     "description": "at or before start_time: the window crosses midnight"},
        "time_zone": {"type": "string", "description": "IANA name; default UTC"},
        "enabled": {"type": "boolean"},
    },
}

# The other shippers' receivers answer as their own servers do (see docs/shipping.md).
SHIPPER_PATHS = {
    "/v1/logs": {"post": {
        "summary": "OTLP/HTTP logs (ExportLogsServiceRequest), protobuf or JSON, gzip allowed",
        "parameters": [_query("service", {"type": "string"},
                              "service of records whose resource has no service.name")],
        "requestBody": {"content": {"application/x-protobuf": {"schema": {"type": "string"}},
                                    "application/json": {"schema": {"type": "object"}}}},
        "responses": {"200": {"description": "ExportLogsServiceResponse; partial_success names"
                                             " refused records"},
                      "400": {"description": "google.rpc.Status in the request's encoding"},
                      "401": {"description": "google.rpc.Status"},
                      "413": {"description": "google.rpc.Status"},
                      "415": {"description": "google.rpc.Status"},
                      "429": {"description": "google.rpc.Status"},
                      "503": {"description": "google.rpc.Status"}},
    }},
    "/loki/api/v1/push": {"post": {
        "summary": "Loki push: JSON streams (gzip allowed) or snappy-compressed protobuf",
        "parameters": [_query("service", {"type": "string"},
                              "service of streams with none of the service labels")],
        "requestBody": {"content": {"application/json": {"schema": {"type": "object"}},
                                    "application/x-protobuf": {"schema": {"type": "string"}}}},
        "responses": {"204": {"description": "Every entry stored"},
                      "400": {"description": "Some entries refused (the others are kept),"
                                             " or the body is unreadable",
                              "content": ERROR_CONTENT},
                      "401": ERROR, "413": ERROR, "415": ERROR, "429": ERROR, "503": ERROR},
    }},
    "/gelf": {"post": {
        "summary": "GELF over HTTP: one message, or one per line; gzip or zlib",
        "parameters": [_query("service", {"type": "string"},
                              "service of messages with no _service, _app or facility field")],
        "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": {"202": {"description": "Stored; when some were refused, a JSON body"
                                             " names them"},
                      "400": {"description": "No message could be stored",
                              "content": ERROR_CONTENT},
                      "401": ERROR, "413": ERROR, "429": ERROR, "503": ERROR},
    }},
}

PATHS = {
    "/api/logs": {
        "post": {
            "summary": "Send log lines: a JSON object, an array, NDJSON or HTTPHandler form data",
            "parameters": [_query("service", {"type": "string"}, "default service")],
            "requestBody": {"content": {
                "application/json": {"schema": {"oneOf": [
                    LOG_LINE_IN, {"type": "array", "items": LOG_LINE_IN}]}},
                "application/x-ndjson": {"schema": {"type": "string"}},
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
            }},
            "responses": {
                **_ok("Accepted and refused lines", {"type": "object", "properties": {
                    "accepted": {"type": "integer"}, "rejected": {"type": "integer"},
                    "errors": {"type": "array"}}}, "202"),
                "413": ERROR, "415": ERROR, "429": ERROR, "503": ERROR,
            },
        },
        "get": {
            "summary": "Search lines, newest first",
            "parameters": [
                _query("service", {"type": "array", "items": {"type": "string"}},
                       "repeat for several services"),
                _query("level", LEVEL), _query("min_level", LEVEL),
                _query("q", {"type": "string", "maxLength": 500},
                       "text the message contains, any case; read newest first in slices of"
                       " time within a budget"),
                _query("since", {"type": "string"}), _query("until", {"type": "string"}),
                _query("fingerprint", {"type": "string"}),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                _query("cursor", {"type": "string"}),
            ],
            "responses": _ok("A page of lines", {"type": "object", "properties": {
                "logs": {"type": "array", "items": LOG_LINE}, "count": {"type": "integer"},
                "next_cursor": {"type": ["string", "null"]},
                "searched_since": {
                    "type": ["string", "null"], "format": "date-time",
                    "description": "set when a text search stopped on its time budget: the"
                                   " oldest time it read; next_cursor goes on from there"}}}),
        },
    },
    "/api/logs/{id}": {"get": {
        "summary": "One line",
        "parameters": [{"name": "id", "in": "path", "required": True,
                        "schema": {"type": "integer"}}],
        "responses": {**_ok("The line", LOG_LINE), "404": ERROR},
    }},
    "/api/logs/dashboard": {"get": {
        "summary": "Totals, services, series, top errors, health, active violations",
        "parameters": [WINDOW, TIME_RANGE],
        "responses": _ok("The dashboard", {"type": "object"}),
    }},
    "/api/logs/dashboard/service/{service}": {"get": {
        "summary": "The dashboard of one service", "parameters": [SERVICE_PATH, WINDOW],
        "responses": {**_ok("The service's dashboard", {"type": "object"}), "404": ERROR},
    }},
    "/api/logs/dashboard/top-errors": {"get": {
        "summary": "Error templates by count",
        "parameters": [WINDOW, _query("service", {"type": "string"}),
                       _query("limit", {"type": "integer", "minimum": 1, "maximum": 100})],
        "responses": {**_ok("Top error templates", {"type": "object"}), "404": ERROR},
    }},
    "/api/logs/dashboard/health": {"get": {
        "summary": "Each service's health", "responses": _ok("Health", {"type": "object"}),
    }},
    "/api/logs/services": {"get": {
        "summary": "Known services", "parameters": [WINDOW, TIME_RANGE],
        "responses": _ok("Services", {"type": "object"}),
    }},
    "/api/logs/alerts/config": {
        "get": {"summary": "Every alert config", "responses": _ok("Configs", {"type": "object"})},
        "post": {"summary": "Create a service's alert config",
                 "requestBody": {"content": {"application/json": {"schema": ALERT_CONFIG_IN}}},
                 "responses": {**_ok("Created, with its webhook secret", {"type": "object"},
                                     "201"), "409": ERROR}},
    },
    "/api/logs/alerts/config/{service}": {
        "parameters": [SERVICE_PATH],
        "get": {"summary": "One config", "responses": {**_ok("Config", {"type": "object"}),
                                                       "404": ERROR}},
        "put": {"summary": "Change some fields",
                "requestBody": {"content": {"application/json": {"schema": ALERT_CONFIG_IN}}},
                "responses": {**_ok("Config", {"type": "object"}), "404": ERROR}},
        "delete": {"summary": "Delete", "responses": {**_ok("Deleted", None, "204"),
                                                      "404": ERROR}},
    },
    "/api/logs/alerts/config/{service}/rotate-secret": {"post": {
        "summary": "New webhook secret", "parameters": [SERVICE_PATH],
        "responses": {**_ok("Config with secret", {"type": "object"}), "404": ERROR},
    }},
    "/api/logs/alerts/config/{service}/backtest": {"get": {
        "summary": "How often thresholds would have fired over the last days (minute counts)",
        "parameters": [
            SERVICE_PATH,
            _query("error_threshold_per_min", {"type": "integer", "minimum": 1},
                   "default: the saved one"),
            _query("warning_threshold_per_min", {"type": "integer", "minimum": 1},
                   "default: the saved one"),
            _query("for_minutes", {"type": "integer", "minimum": 1, "maximum": 60},
                   "default: the saved one"),
            _query("days", {"type": "integer", "minimum": 1, "maximum": 7}, "default 7")],
        "responses": {**_ok("Episodes, times fired, longest episode, minutes over, per level",
                            {"type": "object"}), "404": ERROR},
    }},
    "/api/logs/alerts/config/{service}/test": {"post": {
        "summary": "Send a test alert", "parameters": [SERVICE_PATH],
        "responses": {**_ok("Queued deliveries", {"type": "object"}, "202"), "404": ERROR},
    }},
    "/api/logs/alerts/check": {"post": {
        "summary": "Evaluate thresholds now", "responses": _ok("Opened and resolved",
                                                              {"type": "object"}),
    }},
    "/api/logs/alerts/violations": {"get": {
        "summary": "Violations", "parameters": [
            _query("service", {"type": "string"}),
            _query("status", {"type": "string", "enum": ["firing", "resolved"]}),
            _query("since", {"type": "string"}),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})],
        "responses": _ok("Violations", {"type": "object"}),
    }},
    "/api/logs/alerts/violations/{violation_id}": {"get": {
        "summary": "One violation, explained: counts per minute around it, top templates,"
                   " deliveries, silenced and acknowledged state",
        "parameters": [VIOLATION_PATH],
        "responses": {**_ok("The violation and its explanation", {"type": "object"}),
                      "404": ERROR},
    }},
    "/api/logs/alerts/violations/{violation_id}/acknowledge": {"post": {
        "summary": "Acknowledge a firing violation: no repeats until it resolves",
        "parameters": [VIOLATION_PATH],
        "responses": {**_ok("The violation", {"type": "object"}), "404": ERROR,
                      "409": ERROR},
    }},
    "/api/logs/alerts/deliveries": {"get": {
        "summary": "Delivery attempts", "parameters": [
            _query("service", {"type": "string"}), _query("status", {"type": "string"}),
            _query("violation_id", {"type": "integer"}),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})],
        "responses": _ok("Deliveries", {"type": "object"}),
    }},
    "/api/logs/alerts/deliveries/{id}/resend": {"post": {
        "summary": "Send a failed notification again",
        "parameters": [{"name": "id", "in": "path", "required": True,
                        "schema": {"type": "integer"}}],
        "responses": {**_ok("New attempt", {"type": "object"}, "202"), "404": ERROR,
                      "409": ERROR},
    }},
    "/api/logs/alerts/silences": {
        "get": {"summary": "Silences, soonest to end first", "parameters": [
            _query("state", {"type": "string"},
                   "active, upcoming, ended, comma-separated; default active,upcoming"),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})],
            "responses": _ok("Silences", {"type": "object"})},
        "post": {"summary": "Silence a service (or all) and optionally a level",
                 "requestBody": {"content": {"application/json": {"schema": SILENCE_IN}}},
                 "responses": _ok("Created", {"type": "object"}, "201")},
    },
    "/api/logs/alerts/silences/{silence_id}": {"get": {
        "summary": "One silence",
        "parameters": [{"name": "silence_id", "in": "path", "required": True,
                        "schema": {"type": "integer"}}],
        "responses": {**_ok("Silence", {"type": "object"}), "404": ERROR},
    }},
    "/api/logs/alerts/silences/{silence_id}/expire": {"post": {
        "summary": "End a silence now",
        "parameters": [{"name": "silence_id", "in": "path", "required": True,
                        "schema": {"type": "integer"}}],
        "responses": {**_ok("Silence", {"type": "object"}), "404": ERROR, "409": ERROR},
    }},
    "/api/logs/alerts/maintenance-windows": {
        "get": {"summary": "Maintenance windows, whether each holds now, next start",
                "responses": _ok("Windows", {"type": "object"})},
        "post": {"summary": "Create a recurring maintenance window",
                 "requestBody": {"content": {"application/json": {"schema": WINDOW_IN}}},
                 "responses": _ok("Created", {"type": "object"}, "201")},
    },
    "/api/logs/alerts/maintenance-windows/{window_id}": {
        "parameters": [{"name": "window_id", "in": "path", "required": True,
                        "schema": {"type": "integer"}}],
        "put": {"summary": "Change some fields (enabled alone switches it on or off)",
                "requestBody": {"content": {"application/json": {"schema": WINDOW_IN}}},
                "responses": {**_ok("Window", {"type": "object"}), "404": ERROR}},
        "delete": {"summary": "Delete", "responses": {**_ok("Deleted", None, "204"),
                                                      "404": ERROR}},
    },
    "/api/tokens": {
        "get": {"summary": "API tokens (never their values)",
                "responses": _ok("Tokens", {"type": "object"})},
        "post": {"summary": "Create a token; its value is shown once",
                 "requestBody": {"content": {"application/json": {"schema": {
                     "type": "object", "properties": {
                         "name": {"type": "string"},
                         "scope": {"type": "string", "enum": ["ingest", "read", "admin"]},
                         "service": {"type": ["string", "null"]}}}}}},
                 "responses": _ok("Token", {"type": "object"}, "201")},
    },
    "/api/tokens/{id}": {"delete": {
        "summary": "Revoke a token",
        "parameters": [{"name": "id", "in": "path", "required": True,
                        "schema": {"type": "integer"}}],
        "responses": {**_ok("Revoked", None, "204"), "404": ERROR},
    }},
}

SPEC = {
    "openapi": "3.1.0",
    "info": {"title": "Logdash", "version": "1",
             "description": "Log ingestion, search, statistics and alerts."},
    "paths": {**PATHS, **SHIPPER_PATHS},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "responses": {"Error": {"description": "A JSON error naming the problem",
                                "content": ERROR_CONTENT}},
    },
    "security": [{"bearer": []}],
}


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI description."""
    return jsonify(SPEC)
