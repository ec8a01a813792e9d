"""WSGI entry point for gunicorn: ``gunicorn samleng.service.wsgi:app`` (set by SAMLENG_*)."""

from samleng.service.app import create_app

app = create_app()
