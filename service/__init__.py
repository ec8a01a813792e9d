"""The Samleng web service: the Flask app, its database, and the signing path."""

from samleng.service.app import create_app

__all__ = ["create_app"]
