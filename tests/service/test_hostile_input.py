"""Inputs that once answered 500 with a traceback, each refused cleanly now.

A form token whose digits are not ASCII, a checkpoint size beyond 64 bits, a line break or a
NUL in the address (with an onion address configured, the address is echoed in a header), a
Host header no URL can be built for, and a petition whose phone region does not exist.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from samleng.crypto.details import generate_details_keypair
from samleng.service.app import create_app
from samleng.service.petitions.lifecycle import create_petition, open_petition
from samleng.service.platform.context import services
from samleng.service.platform.db import upgrade
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.errors import PetitionMisconfigured, PetitionNotFound
from samleng.service.platform.models import DedupToken, PendingSignature, Petition, get_petition
from tests.conftest import (
    CHEAP_ARGON2,
    ORIGIN,
    TEXTS,
    OpenPetition,
    add_petition,
    form_token,
    make_config,
    sign,
)

ONION = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion"


@pytest.fixture
def onion_app(tmp_path: Path, database_url: str) -> Iterator[Flask]:
    """The app with an onion address: every clearnet answer names it in Onion-Location."""
    application = create_app(make_config(tmp_path, database_url, onion_address=ONION))
    upgrade(services(application).engine)
    add_petition(application, slug="demo")
    yield application
    services(application).engine.dispose()


def stored(app: Flask) -> tuple[int, int]:
    with app.app_context():
        session = get_session()
        pending = session.scalar(select(func.count()).select_from(PendingSignature)) or 0
        tokens = session.scalar(select(func.count()).select_from(DedupToken)) or 0
    return pending, tokens


@pytest.mark.parametrize(
    "token",
    ["²", "²³.x", "١٢٣.AAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAA", "1_000.a.b", " 12.a.b", "9" * 40],
)
def test_form_tokens_with_other_digits_are_refused(
    client: FlaskClient, petition: OpenPetition, token: str
) -> None:
    answer = client.post(
        f"/en/p/{petition.slug}/sign",
        data={"form_token": token, "consent": "yes", "identifier": "012 345 678"},
    )
    assert answer.status_code == 400
    assert "too old or was sent too quickly" in answer.get_data(as_text=True)


@pytest.mark.parametrize("size", ["99999999999999999999999", str(2**63), str(2**64 + 1), "9" * 300])
def test_checkpoint_sizes_beyond_64_bits_are_not_found(
    client: FlaskClient, petition: OpenPetition, size: str
) -> None:
    assert client.get(f"/p/{petition.slug}/checkpoints/{size}").status_code == 404
    assert client.get(f"/p/{petition.slug}/checkpoints/{2**63 - 1}").status_code == 404
    assert client.get(f"/p/{petition.slug}/checkpoints/1").status_code == 200


# "9" * 5000: past int()'s 4300 digits, which raised a ValueError (a 500) until refused early.
@pytest.mark.parametrize(
    "old", ["²", "٣", "1_0", " 1", "99999999999999999999999", "-1", "9" * 5000]
)
def test_consistency_sizes_take_ascii_digits_only(
    client: FlaskClient, petition: OpenPetition, old: str
) -> None:
    answer = client.get(f"/p/{petition.slug}/proof/consistency", query_string={"old": old})
    assert answer.status_code == 400


@pytest.mark.parametrize(
    "path",
    ["/en/p/demo%0a", "/en/p/demo%0d%0aSet-Cookie:%20x=1", "/en/p/%00", "/p/demo%0a/checkpoint",
     "/en/%0a", "/en/p/demo/receipt%0a", "/x%0ay"],
)  # fmt: skip
def test_line_breaks_and_nuls_in_the_address(onion_app: Flask, path: str) -> None:
    client = onion_app.test_client()
    answer = client.get(path)
    assert answer.status_code == 404
    location = answer.headers["Onion-Location"]
    assert "\n" not in location and "\r" not in location and "\x00" not in location
    assert location.startswith(f"http://{ONION}/")
    assert "Set-Cookie" not in answer.headers


def test_onion_location_names_the_same_page(onion_app: Flask) -> None:
    client = onion_app.test_client()
    answer = client.get("/km/p/demo?lang=ខ្មែរ&a=1%0a")
    assert answer.status_code == 200
    assert answer.headers["Onion-Location"] == (
        f"http://{ONION}/km/p/demo?lang=%E1%9E%81%E1%9F%92%E1%9E%98%E1%9F%82%E1%9E%9A&a=1%0a"
    )


def test_a_host_no_url_can_be_built_for(client: FlaskClient, petition: OpenPetition) -> None:
    for host in ["a" * 64, "a" * 64 + ".example.org", "b." + "c" * 70 + ":8000"]:
        answer = client.get(f"/en/p/{petition.slug}", environ_overrides={"HTTP_HOST": host})
        assert answer.status_code == 400, host
        assert "could not be understood" in answer.get_data(as_text=True)


def test_a_forwarded_host_no_url_can_be_built_for(tmp_path: Path, database_url: str) -> None:
    application = create_app(make_config(tmp_path, database_url, trusted_proxies=1))
    upgrade(services(application).engine)
    answer = application.test_client().get("/km/", headers={"X-Forwarded-Host": "a" * 64})
    assert answer.status_code == 400
    assert answer.mimetype == "text/plain" and "Traceback" not in answer.get_data(as_text=True)
    services(application).engine.dispose()


def test_slugs_that_are_not_slugs_are_not_looked_up(app: Flask) -> None:
    with app.app_context():
        session = get_session()
        for slug in ["a\x00b", "demo\n", "x" * 10_000, "", "DEMO"]:
            with pytest.raises(PetitionNotFound):
                get_petition(session, slug)


# --- the petition's phone region -------------------------------------------------------------


def new_petition(app: Flask, slug: str, region: str, **kwargs: Any) -> Petition:
    with app.app_context():
        session = get_session()
        petition = create_petition(
            session,
            vault=services(app).vault,
            origin=ORIGIN,
            slug=slug,
            texts=TEXTS,
            goal=10,
            identifier_mode="phone",
            details_public_key=generate_details_keypair()[1],
            argon2=CHEAP_ARGON2,
            region=region,
            **kwargs,
        )
        session.commit()
        return petition


@pytest.mark.parametrize("region", ["XX", "ΚΗ", "kh", "Kh", "K", "KHM", "", "K1", "ＫＨ", "001"])
def test_a_region_is_a_known_country_code_at_creation(app: Flask, region: str) -> None:
    with pytest.raises(ValueError, match="phone region"):
        new_petition(app, "bad-region", region)
    with app.app_context():
        assert get_session().scalar(select(func.count()).select_from(Petition)) == 0


@pytest.mark.parametrize("region", ["KH", "TH", "US", "FR", "VN"])
def test_known_regions_are_accepted(app: Flask, region: str) -> None:
    assert new_petition(app, "good-region", region).region == region


def test_the_cli_says_what_is_wrong_with_a_region(app: Flask, tmp_path: Path) -> None:
    texts = tmp_path / "texts.json"
    texts.write_text('{"en": {"title": "T", "body": "B"}}', encoding="utf-8")
    key = tmp_path / "details.pub"
    key.write_text("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", encoding="utf-8")
    result = app.test_cli_runner().invoke(
        args=["petition", "create", "x", "--texts", str(texts), "--goal", "5",
              "--identifier", "phone", "--details-key", str(key), "--region", "ΚΗ"],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "phone region" in result.output and "Traceback" not in result.output


def stored_region(app: Flask, slug: str, region: str) -> None:
    """Give a petition a region as one made before regions were checked could have."""
    with app.app_context():
        session = get_session()
        session.execute(update(Petition).where(Petition.slug == slug).values(region=region))
        session.commit()


@pytest.mark.parametrize("region", ["XX", "ΚΗ"])
def test_signing_a_petition_with_a_bad_region_is_refused_cleanly(
    app: Flask, client: FlaskClient, caplog: Any, region: str
) -> None:
    caplog.set_level(logging.INFO)
    add_petition(app, slug="old")
    stored_region(app, "old", region)
    answer = sign(client, "old", "km", identifier="012 345 678")
    assert answer.status_code == 409
    assert '<html lang="km">' in answer.get_data(as_text=True)
    english = sign(client, "old", identifier="012 345 678")
    assert "cannot take signatures at the moment" in english.get_data(as_text=True)
    assert stored(app) == (0, 0)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "phone region" in logged and "345" not in logged
    assert client.get("/en/p/old").status_code == 200


def test_opening_a_draft_with_a_bad_region_is_refused(app: Flask) -> None:
    add_petition(app, slug="draft", status="draft")
    stored_region(app, "draft", "XX")
    with app.app_context():
        session = get_session()
        with pytest.raises(PetitionMisconfigured, match="phone region"):
            open_petition(
                session, get_petition(session, "draft"), services(app).vault, can_mail=False
            )
        session.rollback()
        assert get_petition(session, "draft").status == "draft"


def test_a_form_token_fetched_for_one_petition(client: FlaskClient, app: Flask) -> None:
    """Also refused cleanly: the token of another petition."""
    add_petition(app, slug="one")
    add_petition(app, slug="two")
    answer = client.post(
        "/en/p/two/sign",
        data={"form_token": form_token(client, "one"), "consent": "yes", "identifier": "012"},
    )
    assert answer.status_code == 400
