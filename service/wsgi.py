"""WSGI entry point for gunicorn: ``gunicorn service.wsgi:app`` (configured by SAMLENG_*)."""

from service.app import create_app

app = create_app()
