"""GET /api/openapi.json: the OpenAPI 3.1 description of the JSON API."""

from flask import jsonify

from app.api import bp
from app.models import LEVELS

ERROR = {"$ref": "#/components/responses/Error"}
WINDOW = {"name": "window", "in": "query",
          "schema": {"type": "string", "enum": ["1h", "24h", "7d", "30d"]}}
SERVICE_PATH = {"name": "service", "in": "path", "required": True, "schema": {"type": "string"}}
LEVEL = {"type": "string", "enum": list(LEVELS)}


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
    "required": ["message"],
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
    },
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
                _query("service", {"type": "string"}), _query("level", LEVEL),
                _query("min_level", LEVEL), _query("q", {"type": "string", "maxLength": 500}),
                _query("since", {"type": "string"}), _query("until", {"type": "string"}),
                _query("fingerprint", {"type": "string"}),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                _query("cursor", {"type": "string"}),
            ],
            "responses": _ok("A page of lines", {"type": "object", "properties": {
                "logs": {"type": "array", "items": LOG_LINE}, "count": {"type": "integer"},
                "next_cursor": {"type": ["string", "null"]}}}),
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
        "parameters": [WINDOW, _query("timeRange", {"type": "string",
                                                    "enum": ["1h", "1d", "1w"]})],
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
        "responses": _ok("Top error templates", {"type": "object"}),
    }},
    "/api/logs/dashboard/health": {"get": {
        "summary": "Each service's health", "responses": _ok("Health", {"type": "object"}),
    }},
    "/api/logs/services": {"get": {
        "summary": "Known services", "parameters": [WINDOW],
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
    "paths": PATHS,
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "responses": {"Error": {"description": "A JSON error naming the problem",
                                "content": {"application/json": {"schema": {
                                    "type": "object", "required": ["error"],
                                    "properties": {"error": {"type": "string"}}}}}}},
    },
    "security": [{"bearer": []}],
}


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI description."""
    return jsonify(SPEC)
