"""The service's errors: the one JSON shape every API error has, and what stops it from starting."""

from __future__ import annotations

from flask import jsonify


class ConfigurationError(RuntimeError):
    """A setting the service cannot work with (a file of API keys it cannot read, say): refused at
    start, answered 503 when it goes bad at run time."""


def error_response(status: int, code: str, message: str):
    return jsonify({"error": {"code": code, "message": message}}), status
