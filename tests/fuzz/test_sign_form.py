"""Fuzzing the sign form through the test client: never a 500, nothing stored on refusal.

Hypothesis posts arbitrary field maps (known names with hostile values, unknown names,
repeated fields) and arbitrary bodies to ``/en/p/<slug>/sign`` of petitions in every
identifier mode. Every answer must be one the design allows (200, 400, 413, 429, 503), and
a refused request must leave the pending signatures and dedup tokens exactly as they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from samleng.service.platform.context import services
from samleng.service.platform.models import DedupToken, PendingSignature
from samleng.service.signing.formtoken import issue_form_token
from tests.conftest import add_petition, form_token
from tests.fuzz.mutations import examples

ALLOWED = {200, 400, 413, 429, 503}
SLUGS = {"phone": "fuzz-phone", "email": "fuzz-email", "none": "fuzz-none"}
FIELDS = ["identifier", "name", "locality", "comment", "contact", "consent", "website"]
# Function-scoped fixtures are shared by all examples on purpose: the app and its petitions
# are set up once per database, and each example compares the row counts before and after.
FUZZ = settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# Text that reaches every branch of the form parser and the normalisers: plausible phone
# numbers and addresses (Khmer digits, separators, tags, dots), control characters, NUL,
# lone surrogates as they arrive percent-encoded, very long values, and anything at all.
phones = st.from_regex(r"\A\+?[0-9០-៩ ()./-]{0,20}\Z")
emails = st.from_regex(r"\A[a-zA-Z0-9.+_ -]{0,20}@[a-z0-9.-]{0,15}\Z")
values = st.one_of(
    phones,
    emails,
    st.sampled_from(["", "yes", "012 345 678", "+855 12 345 678", "a@gmail.com", "\x00"]),
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8"), min_size=300, max_size=600),
)
field_maps = st.dictionaries(
    st.one_of(st.sampled_from(FIELDS), st.text(max_size=12)), values, max_size=10
)


class Tokens:
    """Fresh sign-form tokens, as the petition pages carry them: each is good once."""

    def __init__(self, app: Flask) -> None:
        self._key: bytes = services(app).form_tokens.key

    def __getitem__(self, slug: str) -> str:
        return issue_form_token(self._key, slug)


@pytest.fixture
def fuzz_app(app: Flask) -> Iterator[tuple[FlaskClient, Tokens, Engine]]:
    """Open petitions in every identifier mode, and valid form tokens for each."""
    for mode, slug in SLUGS.items():
        add_petition(app, slug=slug, identifier_mode=mode)
    client = app.test_client()
    for slug in SLUGS.values():
        form_token(client, slug)  # the page itself issues one
    yield client, Tokens(app), services(app).engine


def _rows(engine: Engine) -> tuple[int, int]:
    """(pending signatures, dedup tokens) in the database."""
    with Session(engine) as session:
        pending = session.scalar(select(func.count()).select_from(PendingSignature))
        tokens = session.scalar(select(func.count()).select_from(DedupToken))
    return pending or 0, tokens or 0


def _check(
    response_status: int, body: bytes, before: tuple[int, int], after: tuple[int, int]
) -> None:
    assert response_status in ALLOWED, (response_status, body[-600:])
    event(f"status {response_status}")  # --hypothesis-show-statistics: every branch is reached
    if response_status == 200:
        assert b'class="receipt"' in body
        assert 0 <= after[0] - before[0] <= 1 and 0 <= after[1] - before[1] <= 1
    else:
        assert after == before, "a refused request stored something"


VALID = {
    "phone": st.sampled_from(["012 345 678", "+855 12 345 678", "០១២ ៣៤៥ ៦៧៨", "(012) 345-678"]),
    "email": st.sampled_from(["a.b+tag@gmail.com", "someone@example.org", "X@Example.ORG"]),
    "none": st.just(""),
}


@FUZZ
@given(data=st.data(), mode=st.sampled_from(sorted(SLUGS)), valid_base=st.booleans())
def test_field_maps(
    fuzz_app: tuple[FlaskClient, Tokens, Engine],
    data: st.DataObject,
    mode: str,
    valid_base: bool,
) -> None:
    client, tokens, engine = fuzz_app
    slug = SLUGS[mode]
    fields: dict[str, str] = {}
    if valid_base:  # start from an acceptable form, so that the fuzzed fields reach signing
        fields = {
            "form_token": tokens[slug],
            "consent": "yes",
            "identifier": data.draw(VALID[mode]),
        }
        fields.update(data.draw(st.dictionaries(st.sampled_from(FIELDS[1:5]), values, max_size=4)))
    else:
        fields = data.draw(field_maps)
        if data.draw(st.booleans()):
            fields["form_token"] = tokens[slug]
    pairs = list(fields.items())
    repeat = data.draw(st.sampled_from([None, None, None, *FIELDS]))
    if repeat is not None:  # a field sent twice
        pairs += [(repeat, "x"), (repeat, "y")]
    before = _rows(engine)
    response = client.post(
        f"/en/p/{slug}/sign",
        data=urlencode(pairs).encode(),
        content_type="application/x-www-form-urlencoded",
    )
    _check(response.status_code, response.get_data(), before, _rows(engine))


@FUZZ
@given(
    mode=st.sampled_from(sorted(SLUGS)),
    body=st.one_of(
        st.binary(max_size=400),
        # Around the 16 KiB request limit (built from a short pattern: Hypothesis draws small).
        st.builds(
            lambda unit, n: (unit * n)[:n],
            st.binary(min_size=1, max_size=16),
            st.integers(16_000, 17_000),
        ),
    ),
    content_type=st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/plain",
            "application/json",
        ]
    ),
    prefix=st.booleans(),
)
def test_raw_bodies(
    fuzz_app: tuple[FlaskClient, Tokens, Engine],
    mode: str,
    body: bytes,
    content_type: str,
    prefix: bool,
) -> None:
    client, tokens, engine = fuzz_app
    slug = SLUGS[mode]
    if prefix:  # a valid token and consent first, so that the bytes reach the deeper checks
        body = f"form_token={tokens[slug]}&consent=yes&".encode() + body
    before = _rows(engine)
    response = client.post(f"/en/p/{slug}/sign", data=body, content_type=content_type)
    _check(response.status_code, response.get_data(), before, _rows(engine))
