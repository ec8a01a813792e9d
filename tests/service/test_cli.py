"""The ``samleng`` commands: petition lifecycle, init, keys."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from samleng.crypto.details import generate_details_keypair
from samleng.service.platform.context import services
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import DedupToken, Petition
from samleng.service.signing.formtoken import issue_form_token
from tests.conftest import TEXTS, sign


def create(runner: FlaskCliRunner, tmp_path: Path, slug: str = "cli-made") -> None:
    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps(TEXTS), encoding="utf-8")
    key = tmp_path / "details.pub"
    key.write_text(base64.b64encode(generate_details_keypair()[1]).decode() + "\n")
    result = runner.invoke(
        args=[
            "petition", "create", slug, "--texts", str(texts), "--goal", "1000",
            "--identifier", "phone", "--details-key", str(key),
        ]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "created draft petition" in result.output


def status(app: Flask, slug: str) -> str:
    with app.app_context():
        return get_session().scalars(select(Petition.status).where(Petition.slug == slug)).one()


def test_lifecycle(app: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    create(runner, tmp_path)
    assert status(app, "cli-made") == "draft"
    assert runner.invoke(args=["petition", "open", "cli-made"]).exit_code == 0
    assert status(app, "cli-made") == "open"
    assert sign(app.test_client(), "cli-made", identifier="012345678").status_code == 200
    assert runner.invoke(args=["petition", "close", "cli-made"]).exit_code == 0
    assert status(app, "cli-made") == "closed"
    refused = runner.invoke(args=["petition", "forget", "cli-made"], input="wrong\n")
    assert refused.exit_code != 0 and "nothing was changed" in refused.output
    result = runner.invoke(args=["petition", "forget", "cli-made"], input="cli-made\n")
    assert result.exit_code == 0, result.output
    assert "1 tokens destroyed" in result.output
    with app.app_context():
        session = get_session()
        petition = session.scalars(select(Petition).where(Petition.slug == "cli-made")).one()
        assert petition.status == "forgotten" and petition.wrapped_dedup_key is None
        assert session.scalar(select(func.count()).select_from(DedupToken)) == 0


def test_refusals(runner: FlaskCliRunner, tmp_path: Path) -> None:
    create(runner, tmp_path)
    again = runner.invoke(args=["petition", "close", "cli-made"])
    assert again.exit_code != 0 and "it must be open to become closed" in again.output
    missing = runner.invoke(args=["petition", "open", "nope"])
    assert missing.exit_code != 0 and "no petition with slug 'nope'" in missing.output
    texts = tmp_path / "texts.json"
    duplicate = runner.invoke(
        args=[
            "petition", "create", "cli-made", "--texts", str(texts), "--goal", "5",
            "--identifier", "phone", "--details-key", str(tmp_path / "details.pub"),
        ]
    )  # fmt: skip
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output


def test_init_is_idempotent(runner: FlaskCliRunner) -> None:
    assert runner.invoke(args=["init"]).exit_code == 0
    assert runner.invoke(args=["init"]).exit_code == 0


def test_keys_nginx_form_prints_the_form_token_key_for_nginx(
    app: Flask, runner: FlaskCliRunner
) -> None:
    """The include nginx reads: the form-token key (not the master key), as nginx's
    samleng-app.conf wants it; a token made under it is one the app accepts."""
    result = runner.invoke(args=["keys", "nginx-form"])
    assert result.exit_code == 0, result.output
    match = re.fullmatch(r'set \$samleng_form_key "([0-9a-f]{64})";\n', result.output)
    assert match
    key = bytes.fromhex(match.group(1))
    assert key == services(app).form_tokens.key and key != services(app).config.master_key
    services(app).form_tokens.spend("demo", issue_form_token(key, "demo", time.time() - 10))
