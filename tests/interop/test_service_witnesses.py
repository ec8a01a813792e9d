"""A petition witnessed by real litewitness and omniwitness processes, through the service.

The petition names both witnesses and a quorum of two before it opens; the sealer's witness
round (service/tlog/witnesses.py) sends each checkpoint with the consistency proof from what
each witness last cosigned (omniwitness is fed by add-checkpoint, not through tiles). What the
site then serves, the bundle it exports and the receipts it gives carry the cosignatures, and
torchwood and samleng-audit check them against the policy frozen into petition.json. The
faults: a witness down, a witness told a stale size, a witness with another key, the sealer
stopped between sealing and witnessing, and a split view made on purpose.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from samleng.crypto.audit import main as audit
from samleng.crypto.bundle import BundleCheck, BundleError, verify_bundle
from samleng.crypto.checkpoint import Checkpoint, sign_checkpoint
from samleng.crypto.policy import format_policy, require_quorum
from samleng.service.petitions.lifecycle import open_petition
from samleng.service.platform.context import services
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.models import (
    AuditEvent,
    PendingSignature,
    SignedCheckpoint,
    Witness,
    get_petition,
)
from samleng.service.tlog.export import write_bundle
from samleng.service.tlog.store import log_signer, seal_all
from samleng.service.tlog.witnesses import (
    Backoff,
    add_witness,
    coverage,
    published_policy,
    set_quorum,
    witness_round,
)
from samleng.service.tlog.witnessing import Outcome, WitnessClient
from tests.components import free_port
from tests.conftest import MASTER_KEY, add_petition, receipt_of, sign
from tests.crypto.logfactory import forge_without_leaf
from tests.interop.reference import (
    Built,
    RunningWitness,
    SSHAgent,
    run_tool,
    start_litewitness,
    start_omniwitness,
)

LITE = ("witness.example/lite", bytes(range(32)))
OMNI = ("witness.example/omni", bytes(range(100, 132)))
OTHER_SEED = bytes(range(200, 232))


@dataclass
class Witnessed:
    """The app, its petition, and the two witnesses running for it."""

    app: Flask
    client: FlaskClient
    slug: str
    vkey: str
    lite: RunningWitness
    omni: RunningWitness
    directory: Path
    tools: Built
    agent: SSHAgent

    def restart_lite(self, seed: bytes = LITE[1]) -> None:
        """Start litewitness again on its port, with its database (and ``seed``'s key)."""
        self.lite.stop()
        port = int(self.lite.url.rsplit(":", 1)[1])
        self.lite = start_litewitness(
            self.tools,
            self.agent,
            self.directory / "lite",
            name=LITE[0],
            seed=seed,
            logs=[],
            port=port,
        )


def vkey_of(seed: bytes, name: str) -> str:
    from samleng.crypto.cosignature import CosignatureSigner

    return CosignatureSigner(name=name, seed=seed).verifier.vkey


@pytest.fixture
def witnessed(
    app: Flask,
    client: FlaskClient,
    go_tools: Built,
    ssh_agent: SSHAgent,
    tmp_path: Path,
) -> Iterator[Witnessed]:
    lite_port, omni_port = free_port(), free_port()
    petition = add_petition(app, status="draft")
    with app.app_context():
        session = get_session()
        draft = get_petition(session, petition.slug)
        add_witness(
            session,
            draft,
            name="lite",
            url=f"http://127.0.0.1:{lite_port}",
            vkey=vkey_of(LITE[1], LITE[0]),
        )
        add_witness(
            session,
            draft,
            name="omni",
            url=f"http://127.0.0.1:{omni_port}",
            vkey=vkey_of(OMNI[1], OMNI[0]),
        )
        set_quorum(session, draft, 2)
        open_petition(session, draft, services(app).vault, can_mail=False)
        session.commit()
        origin, vkey = draft.origin, draft.log_vkey
    assert vkey is not None
    logs = [(origin, vkey)]
    lite = start_litewitness(
        go_tools, ssh_agent, tmp_path / "lite", name=LITE[0], seed=LITE[1], logs=logs,
        port=lite_port,
    )  # fmt: skip
    omni = start_omniwitness(
        go_tools, tmp_path / "omni", name=OMNI[0], seed=OMNI[1], logs=logs, port=omni_port
    )
    state = Witnessed(app, client, petition.slug, vkey, lite, omni, tmp_path, go_tools, ssh_agent)
    yield state
    state.lite.stop()
    state.omni.stop()


def sign_some(w: Witnessed, count: int, start: int) -> list[str]:
    return [
        receipt_of(sign(w.client, w.slug, identifier=f"012 345 {start + i:03d}", name=f"N{i}"))
        for i in range(count)
    ]


def seal(w: Witnessed) -> dict[str, int]:
    return seal_all(services(w.app).engine, services(w.app).vault)


def ask(w: Witnessed, backoff: Backoff | None = None) -> dict[str, Outcome]:
    client = WitnessClient(timeout=5)
    try:
        asked = witness_round(services(w.app).engine, client, backoff or Backoff())
    finally:
        client.close()
    return {a.name: a.answer.outcome for a in asked}


def served(w: Witnessed, path: str = "checkpoint") -> bytes:
    response = w.client.get(f"/p/{w.slug}/{path}")
    assert response.status_code == 200, response.status_code
    return response.data


def policy_of(w: Witnessed) -> bytes:
    with w.app.app_context():
        policy = published_policy(get_petition(get_session(), w.slug))
    assert policy is not None
    return format_policy(policy)


def test_every_checkpoint_is_cosigned_by_both_and_verified_by_torchwood(
    witnessed: Witnessed, tmp_path: Path
) -> None:
    w = witnessed
    policy_file = policy_of(w)
    assert b"group witnesses all lite omni\nquorum witnesses\n" in policy_file
    # The first checkpoint (the header) is witnessed as soon as the round runs.
    assert ask(w) == {"lite": Outcome.COSIGNED, "omni": Outcome.COSIGNED}
    receipts = []
    for start in (0, 3, 5):
        receipts += sign_some(w, 3 if start == 0 else 2, start)
        seal(w)
        assert ask(w) == {"lite": Outcome.COSIGNED, "omni": Outcome.COSIGNED}
    note = served(w)
    from samleng.crypto.policy import parse_policy

    witnessed_note = require_quorum(note, w.vkey, parse_policy(policy_file))
    assert witnessed_note.witnesses == {"lite", "omni"}
    assert served(w, "checkpoints/8") == note
    (tmp_path / "policy").write_bytes(policy_file)
    (tmp_path / "note").write_bytes(note)
    done = run_tool(
        w.tools.paths["witnessverify"], "checkpoint", tmp_path / "policy", tmp_path / "note"
    )
    assert done.returncode == 0 and done.stdout.startswith(f"ok {w.vkey.split('+')[0]} 8\n")
    # The page says who witnessed the count.
    page = w.client.get(f"/en/p/{w.slug}").get_data(as_text=True)
    assert "Witnessed by 2 of 2 organisations" in page and "lite" in page and "omni" in page
    # A receipt's proof carries the cosigned checkpoint; samleng-audit requires the quorum.
    proof = w.client.post(
        f"/en/p/{w.slug}/receipt", data={"receipt": receipts[0], "format": "proof"}
    )
    (tmp_path / "proof").write_bytes(proof.data)
    (tmp_path / "vkey").write_text(w.vkey + "\n")
    args = ["receipt", str(tmp_path / "proof"), "--vkey", str(tmp_path / "vkey")]
    assert audit([*args, "--policy", str(tmp_path / "policy")]) == 0
    # The bundle carries the frozen policy; it verifies; a forged copy does not.
    with w.app.app_context():
        session = get_session()
        petition = get_petition(session, w.slug)
        write_bundle(session, petition, tmp_path / "bundle", delivery=False)
        signer = log_signer(petition, MASTER_KEY)
    report = verify_bundle(tmp_path / "bundle")
    assert report.witnesses is not None and report.witnesses.final == {"lite", "omni"}
    assert (tmp_path / "bundle" / "policy").read_bytes() == policy_file
    verify_txt = (tmp_path / "bundle" / "VERIFY.txt").read_text()
    assert "6. Witnesses" in verify_txt and "៦. អង្គការសាក្សី" in verify_txt
    forged = forge_without_leaf(tmp_path / "bundle", tmp_path / "forged", 3, signer)
    with pytest.raises(BundleError) as refused:
        verify_bundle(forged)
    assert refused.value.check is BundleCheck.WITNESS_QUORUM
    assert audit(["verify", str(forged)]) == 1
    # Without its policy file the forged bundle still fails: petition.json froze one.
    (forged / "policy").unlink()
    from tests.crypto.logfactory import reseal

    reseal(forged)
    with pytest.raises(BundleError) as refused:
        verify_bundle(forged)
    assert refused.value.check is BundleCheck.POLICY


def test_a_witness_down_delays_only_its_cosignature(witnessed: Witnessed) -> None:
    w = witnessed
    assert ask(w) == {"lite": Outcome.COSIGNED, "omni": Outcome.COSIGNED}
    w.omni.stop()
    # Signing and sealing go on; the sealer is also "killed" between sealing and witnessing:
    # two batches are sealed with no witness round between them.
    sign_some(w, 2, 0)
    assert seal(w) == {w.slug: 3}
    sign_some(w, 2, 2)
    assert seal(w) == {w.slug: 5}
    backoff = Backoff()
    assert ask(w, backoff) == {"lite": Outcome.COSIGNED, "omni": Outcome.UNAVAILABLE}
    with w.app.app_context():
        cover = coverage(get_session(), get_petition(get_session(), w.slug))
    assert cover is not None and cover.cosigned == ("lite",) and not cover.met
    # It backs off: the next round does not ask it at once.
    assert ask(w, backoff) == {}
    w.omni = start_omniwitness(
        w.tools,
        w.directory / "omni",
        name=OMNI[0],
        seed=OMNI[1],
        logs=[(w.vkey.split("+")[0], w.vkey)],
        port=int(w.omni.url.rsplit(":", 1)[1]),
    )
    # Back: it gets the newest checkpoint with the proof from size 1, the last it cosigned.
    assert ask(w) == {"omni": Outcome.COSIGNED}
    with w.app.app_context():
        cover = coverage(get_session(), get_petition(get_session(), w.slug))
    assert cover is not None and cover.met and cover.size == 5


def test_a_stale_size_is_corrected_from_the_witnesss_409(witnessed: Witnessed) -> None:
    w = witnessed
    sign_some(w, 2, 0)
    seal(w)
    assert ask(w) == {"lite": Outcome.COSIGNED, "omni": Outcome.COSIGNED}
    sign_some(w, 2, 2)
    seal(w)
    with w.app.app_context():
        session = get_session()
        session.execute(update(Witness).values(known_size=0))  # the service lost track
        session.commit()
    assert ask(w) == {"lite": Outcome.COSIGNED, "omni": Outcome.COSIGNED}
    with w.app.app_context():
        sizes = get_session().scalars(select(Witness.known_size)).all()
    assert sizes == [5, 5]


def test_a_witness_with_another_key_is_shown_to_the_organisers(witnessed: Witnessed) -> None:
    w = witnessed
    w.restart_lite(seed=OTHER_SEED)
    assert ask(w)["lite"] is Outcome.WRONG_KEY
    with w.app.app_context():
        lite = get_session().scalars(select(Witness).where(Witness.name == "lite")).one()
        assert lite.problem is not None and "key" in lite.problem
        events = get_session().scalars(select(AuditEvent.action)).all()
    assert "witness-problem" in events
    # Its answer is not published, and the quorum of two is not met.
    assert served(w).count(b"\n\xe2\x80\x94 ") == 2  # the log's line and omni's
    result = w.app.test_cli_runner().invoke(args=["witness", "list", w.slug])
    assert result.exit_code == 0 and "key" in result.output


def test_a_split_view_stops_publishing_until_an_organiser_resumes(witnessed: Witnessed) -> None:
    w = witnessed
    sign_some(w, 2, 0)
    seal(w)
    assert ask(w) == {"lite": Outcome.COSIGNED, "omni": Outcome.COSIGNED}
    sign_some(w, 2, 2)
    seal(w)
    # The test-only hook: the log signs a second checkpoint of size 5, with another root.
    with w.app.app_context():
        session = get_session()
        petition = get_petition(session, w.slug)
        signer = log_signer(petition, MASTER_KEY)
        other = sign_checkpoint(Checkpoint(origin=signer.origin, size=5, root=bytes(32)), signer)
        session.execute(
            update(SignedCheckpoint)
            .where(SignedCheckpoint.petition_id == petition.id, SignedCheckpoint.size == 5)
            .values(note=other, root=bytes(32))
        )
        session.commit()
    answers = ask(w)
    assert Outcome.SPLIT_VIEW in answers.values()
    with w.app.app_context():
        session = get_session()
        petition = get_petition(session, w.slug)
        assert petition.witness_halt is not None and "witness" in petition.witness_halt
        assert "witness-split-view" in session.scalars(select(AuditEvent.action)).all()
    # Signing goes on; nothing more is published; the signatures wait.
    sign_some(w, 2, 4)
    assert seal(w) == {}
    with w.app.app_context():
        assert get_session().scalars(select(PendingSignature)).all()
    assert served(w).split(b"\n")[1] == b"5"
    assert ask(w) == {}  # no witness is asked while it is stopped
    page = w.client.get(f"/en/p/{w.slug}").get_data(as_text=True)
    assert "The count is on hold" in page
    # The organiser looked, put the honest checkpoint back, and resumes.
    runner = w.app.test_cli_runner()
    listed = runner.invoke(args=["witness", "list", w.slug])
    assert "STOPPED" in listed.output
    resumed = runner.invoke(args=["witness", "resume", w.slug])
    assert resumed.exit_code == 0 and "publishes checkpoints again" in resumed.output
    assert seal(w) == {w.slug: 7}
    assert ask(w) == {"lite": Outcome.COSIGNED, "omni": Outcome.COSIGNED}
