"""The baseline for bench/page_rps.py: the smallest Flask app, served the same way as Samleng."""

from flask import Flask, request

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    """The minimal page."""
    return "hello"


@app.get("/healthz")
def healthz() -> str:
    """What bench/common.py polls to know the server is up."""
    return "ok\n"


@app.post("/sign")
def sign() -> str:
    """The minimal answer to a form: what any POST through gunicorn costs (sign_floor.py)."""
    return f'<p class="receipt">{len(request.form.get("identifier", ""))}</p>'
