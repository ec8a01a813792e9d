"""The least a signature can do on Samleng's stack, for bench/sign_floor.py alone.

One Flask view does only what DESIGN asks of every signature, each step with the library
Samleng uses for it and nothing around it: read the form, check the form token's HMAC, hand
the identifier to a thread of its own for the dedup hash (BLAKE2b here, as in unhashed_app.py)
and wait for it, seal the details and then the pending record with HPKE (crypto.details,
crypto.pending), write one row with one statement through SQLAlchemy and psycopg, and answer
a page with a receipt code. No limits, no single use, no translation, no headers, no sealer.
What unhashed_app.py costs beyond this is Samleng's own; what this costs beyond hello_app.py
is the work no implementation on this stack can leave out.

It writes to a table of its own (``least_sign``) in the run's private schema and takes the
tokens that bench/common.py's form_tokens makes for ``demo``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from flask import Flask, abort, request
from sqlalchemy import create_engine, text

from samleng.crypto.details import seal_details
from samleng.crypto.leaf import LeafKind
from samleng.crypto.pending import PendingRecord, seal_pending_record
from samleng.service.platform.config import read_master_key
from samleng.service.platform.keys import derive_key
from samleng.service.signing.formtoken import check_form_token

ORIGIN = "bench.invalid/least"
FORM_KEY = derive_key(read_master_key(Path(os.environ["SAMLENG_INSTANCE"])), "form-token")
DETAILS_KEY = os.urandom(32)  # any 32 bytes are an X25519 public key
EPOCH_KEY = os.urandom(32)
URL = os.environ["SAMLENG_DATABASE_URL"]
engine = create_engine(URL.replace("postgresql://", "postgresql+psycopg://", 1))
with engine.begin() as connection:
    connection.execute(
        text("CREATE TABLE IF NOT EXISTS least_sign (id bytea PRIMARY KEY, sealed bytea)")
    )
gate = ThreadPoolExecutor(max_workers=1)
app = Flask(__name__)


def _token(identifier: str) -> bytes:
    return hashlib.blake2b(identifier.encode(), digest_size=32).digest()


@app.get("/healthz")
def healthz() -> str:
    """What bench/common.py polls to know the server is up."""
    return "ok\n"


@app.post("/sign")
def sign() -> str:
    """One signature, the least of it."""
    form = request.form
    check_form_token(FORM_KEY, "demo", form.get("form_token", ""), min_seconds=0, max_age=7200)
    if form.get("consent") != "yes":
        abort(400)
    token = gate.submit(_token, form.get("identifier", "")).result()
    secret = secrets.token_bytes(16)
    commitment = hashlib.sha256(secret).digest()
    details = seal_details(DETAILS_KEY, ORIGIN, commitment, {})
    pending = PendingRecord(
        kind=LeafKind.SIGNATURE, token=token, commitment=commitment, details_ciphertext=details
    )
    sealed = seal_pending_record(EPOCH_KEY, ORIGIN, pending)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO least_sign (id, sealed) VALUES (:id, :sealed)"),
            {"id": secrets.token_bytes(16), "sealed": sealed},
        )
    code = base64.b32encode(secret).decode().rstrip("=")
    return f'<p class="receipt">{code}</p>'
