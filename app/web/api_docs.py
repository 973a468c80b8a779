"""A page listing the JSON API, read from the same OpenAPI description scripts get."""

from flask import render_template

from app.api.openapi import SPEC
from app.web import bp


def operations() -> list[dict]:
    """Every operation of the description: path, method, summary and parameters."""
    found = []
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            names = [p["name"] for p in item.get("parameters", []) + operation.get(
                "parameters", [])]
            found.append({"path": path, "method": method.upper(),
                          "summary": operation.get("summary", ""), "parameters": names,
                          "statuses": sorted(operation.get("responses", {}))})
    return found


@bp.get("/docs/api")
def api_docs_page():
    """The JSON API at a glance, with a link to the machine-readable description."""
    return render_template("api_docs.html", operations=operations())
