"""WSGI entry point for gunicorn: ``gunicorn samleng.service.wsgi:app`` (set by SAMLENG_*)."""

from samleng.service.app import create_app
from samleng.service.platform.logs import configure_logging

configure_logging()
app = create_app()
