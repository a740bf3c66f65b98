"""The REST transport (FastAPI): a thin shell over the service layer."""

from gateway.http.app import create_app

__all__ = ["create_app"]
