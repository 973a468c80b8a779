"""The OpenAPI description is valid and describes every JSON endpoint the app serves."""

import re

import jsonschema
import pytest
from openapi_spec_validator import validate


def test_description_is_valid_openapi(client):
    """The served document passes the OpenAPI 3.1 validator."""
    spec = client.get("/api/openapi.json").json
    validate(spec)
    assert spec["openapi"] == "3.1.0"


def test_every_api_route_is_described(app, client):
    """No JSON endpoint or shipper receiver is missing from the description, nor described
    but absent."""
    spec = client.get("/api/openapi.json").json
    described = {(path, method.upper()) for path, item in spec["paths"].items()
                 for method in item if method != "parameters"}
    served = set()
    for rule in app.url_map.iter_rules():
        api = rule.rule.startswith("/api/") and rule.rule != "/api/openapi.json"
        if not (api or rule.endpoint.startswith("receivers.")):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule).replace("{entry_id}", "{id}")
        path = path.replace("{delivery_id}", "{id}").replace("{token_id}", "{id}")
        served |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == described


def test_described_request_bodies_admit_what_ingest_takes(client):
    """Each form of line /api/logs stores is valid against its described body, and a line
    without any message key is not: the description matches the behaviour."""
    spec = client.get("/api/openapi.json").json
    body = spec["paths"]["/api/logs"]["post"]["requestBody"]["content"]["application/json"]
    lines = [{"service": "api", "message": "m"}, {"service": "api", "msg": "m"},
             {"service": "api", "log": "m"}]
    for line in lines:
        assert client.post("/api/logs", json=line).json["accepted"] == 1
        jsonschema.validate(line, body["schema"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"service": "api", "text": "m"}, body["schema"])
    search = spec["paths"]["/api/logs"]["get"]["parameters"]
    assert next(p for p in search if p["name"] == "service")["schema"]["type"] == "array"
