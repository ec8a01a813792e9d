"""C2SP tlog-policy: every rule of the spec, the quorum, writing, and witnessed checkpoints."""

from itertools import combinations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samleng.crypto.errors import (
    CosignatureError,
    PolicyFormatError,
    PolicyLogError,
    QuorumError,
)
from samleng.crypto.policy import (
    MAX_POLICY_BYTES,
    Policy,
    PolicyGroup,
    PolicyWitness,
    check_witnessed,
    format_policy,
    parse_policy,
    require_quorum,
)
from tests.crypto.logfactory import make_cosigners, make_log, witness_policy

LOG = make_log(3)
VKEY = LOG.signer.vkey
X1, X2, X3, Y1, Y2, Y3 = make_cosigners(6)


def spec_example() -> bytes:
    """The spec's example policy, with real keys in place of <vkey>."""
    keys = {c: c.verifier.vkey for c in (X1, X2, X3, Y1, Y2, Y3)}
    return f"""log {VKEY}

witness X1 {keys[X1]}
witness X2 {keys[X2]}
witness X3 {keys[X3]}
group X-witnesses 2 X1 X2 X3

witness Y1 {keys[Y1]}
witness Y2 {keys[Y2]}
witness Y3 {keys[Y3]}
group Y-witnesses any Y1 Y2 Y3

group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
""".encode()


def test_the_spec_example() -> None:
    policy = parse_policy(spec_example())
    assert [w.name for w in policy.witnesses] == ["X1", "X2", "X3", "Y1", "Y2", "Y3"]
    assert [(g.name, g.threshold) for g in policy.groups] == [
        ("X-witnesses", 2),
        ("Y-witnesses", 1),
        ("X-and-Y", 2),
    ]
    assert policy.quorum == "X-and-Y"
    names = ["X1", "X2", "X3", "Y1", "Y2", "Y3"]
    for n in range(len(names) + 1):
        for chosen in combinations(names, n):
            xs = sum(name.startswith("X") for name in chosen)
            ys = sum(name.startswith("Y") for name in chosen)
            assert policy.satisfied(set(chosen)) == (xs >= 2 and ys >= 1), chosen
    assert policy.describe() == "all of group X-and-Y (X-witnesses, Y-witnesses)"
    assert policy.describe("X-witnesses") == "2 of group X-witnesses (X1, X2, X3)"
    assert parse_policy(format_policy(policy)) == policy


def test_quorum_none_and_single_witness() -> None:
    none = parse_policy(b"quorum none\n")
    assert none.satisfied(set()) and none.describe() == "no cosignature"
    assert none.lists_log(VKEY)  # no log lines: any log, known from context
    single = parse_policy(f"witness a {X1.verifier.vkey}\nquorum a\n".encode())
    assert not single.satisfied(set()) and single.satisfied({"a"})
    assert single.describe() == "witness a"


def test_whitespace_comments_and_urls() -> None:
    text = (
        f"# Samleng policy\n\n   \t\n\t log\t{VKEY}  https://log.example/p/x \n"
        f"  # indented comment\nwitness  w1 {X1.verifier.vkey} http://127.0.0.1:7380\t\n"
        "quorum w1"  # no final newline: accepted
    )
    policy = parse_policy(text.encode())
    assert policy.logs[0].url == "https://log.example/p/x"
    assert policy.witnesses[0].url == "http://127.0.0.1:7380"
    assert (
        format_policy(policy)
        == (
            f"log {VKEY} https://log.example/p/x\nwitness w1 {X1.verifier.vkey} "
            "http://127.0.0.1:7380\nquorum w1\n"
        ).encode()
    )


W = X1.verifier.vkey


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no quorum line"),
        ("quorum none\nquorum none\n", "line 2: a second quorum"),
        ("quorum w\n", "not defined on an earlier line"),
        (f"quorum w\nwitness w {W}\n", "line 1: quorum 'w' is not defined"),
        (f"witness w {W}\nwitness w {X2.verifier.vkey}\nquorum w\n", "already defined"),
        (f"witness none {W}\nquorum none\n", "reserved"),
        (f"witness w {W}\ngroup g any w\ngroup g any w\nquorum g\n", "already defined"),
        (f"witness w {W}\ngroup w any w\nquorum w\n", "already defined"),
        (f"witness w {W}\ngroup g any none\nquorum g\n", "'none' cannot be a member"),
        (f"group g any w\nwitness w {W}\nquorum g\n", "line 1: group 'g': member 'w'"),
        (f"witness w {W}\ngroup g 1 w w\nquorum g\n", "lists a member twice"),
        (f"witness w {W}\ngroup g 0 w\nquorum g\n", "not any, all or a number"),
        (f"witness w {W}\ngroup g 2 w\nquorum g\n", "threshold 2 is not between 1 and 1"),
        (f"witness w {W}\ngroup g 01 w\nquorum g\n", "not any, all or a number"),
        (f"witness w {W}\ngroup g +1 w\nquorum g\n", "not any, all or a number"),
        (f"witness w {W}\ngroup g any\nquorum g\n", "wrong number of fields"),
        (f"witness w {W}\nwitness v {W}\nquorum w\n", "its key is listed twice"),
        (f"log {VKEY}\nlog {VKEY} https://x\nquorum none\n", "its key is listed twice"),
        (f"log {W}\nquorum none\n", "not Ed25519 \\(0x01\\)"),
        (f"witness w {VKEY}\nquorum w\n", "type 0x01, not 0x04"),
        (f"witness w {W} http://x extra\nquorum w\n", "wrong number of fields"),
        (f"log {VKEY} # comment\nquorum none\n", "wrong number of fields"),
        ("log\nquorum none\n", "wrong number of fields"),
        ("quorum\n", "wrong number of fields"),
        ("quorum none extra\n", "wrong number of fields"),
        ("witnesses w k\nquorum none\n", "unknown keyword 'witnesses'"),
        ("Quorum none\n", "unknown keyword"),
        ("quorum none\r\n", "control character 0x0d"),
        ("quorum\x0bnone\n", "control character"),
        ("quorum none\x7f\n", "control character 0x7f"),
        (f"witness w {W}\ngroup #g any w\nquorum none\n", "not one word"),
    ],
)
def test_refused(text: str, message: str) -> None:
    with pytest.raises(PolicyFormatError, match=message):
        parse_policy(text.encode())


def test_refused_bytes() -> None:
    with pytest.raises(PolicyFormatError, match="not UTF-8"):
        parse_policy(b"# \xff\nquorum none\n")
    with pytest.raises(PolicyFormatError, match="larger than"):
        parse_policy(b"#" * MAX_POLICY_BYTES + b"\nquorum none\n")
    # High-bit bytes are allowed where the spec allows them (names, comments), in UTF-8.
    policy = parse_policy(f"# សំឡេង\nwitness សាក្សី {W}\nquorum សាក្សី\n".encode())
    assert policy.satisfied({"សាក្សី"})


def test_hand_built_policies_are_checked_too() -> None:
    witness = PolicyWitness(name="w", verifier=X1.verifier)
    with pytest.raises(PolicyFormatError, match="not defined"):
        Policy(witnesses=(witness,), groups=(PolicyGroup(name="g", threshold=1, members=("v",)),))
    with pytest.raises(PolicyFormatError, match="names no witness"):
        Policy(witnesses=(witness,), quorum="v")
    with pytest.raises(PolicyFormatError, match="URL must be one non-empty word"):
        Policy(witnesses=(PolicyWitness(name="w", verifier=X1.verifier, url="a b"),))


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    """Random consistent policies over the six test witnesses."""
    cosigners = draw(st.lists(st.sampled_from([X1, X2, X3, Y1, Y2, Y3]), unique=True))
    witnesses = tuple(
        PolicyWitness(name=f"w{i}", verifier=c.verifier, url=draw(st.sampled_from([None, "u"])))
        for i, c in enumerate(cosigners)
    )
    names = [w.name for w in witnesses]
    groups: list[PolicyGroup] = []
    for g in range(draw(st.integers(0, 3))):
        if not names:
            break
        members = tuple(draw(st.lists(st.sampled_from(names), min_size=1, unique=True)))
        threshold = draw(st.integers(1, len(members)))
        groups.append(PolicyGroup(name=f"g{g}", threshold=threshold, members=members))
        names.append(f"g{g}")
    quorum = draw(st.sampled_from(["none", *names]))
    return Policy(witnesses=witnesses, groups=tuple(groups), quorum=quorum)


@given(policy=policies(), cosigned=st.sets(st.sampled_from([f"w{i}" for i in range(6)])))
def test_round_trip_and_quorum_is_monotone(policy: Policy, cosigned: set[str]) -> None:
    assert parse_policy(format_policy(policy)) == policy
    if policy.satisfied(cosigned):
        assert policy.satisfied(cosigned | {"w0", "w1"})  # more cosignatures never hurt
    assert policy.satisfied({w.name for w in policy.witnesses})  # all of them always suffice


# --- witnessed checkpoints ----------------------------------------------------------------------


def test_require_quorum() -> None:
    policy = parse_policy(witness_policy(VKEY, [X1, X2, X3], 2))
    two = LOG.witnessed_checkpoint(None, [X1, X3])
    witnessed = require_quorum(two, VKEY, policy)
    assert witnessed.witnesses == {"w1", "w3"} and witnessed.quorum_met
    assert witnessed.cosigned.checkpoint.size == LOG.size
    one = LOG.witnessed_checkpoint(None, [X2, Y1])  # Y1 is not in the policy
    assert check_witnessed(one, VKEY, policy).witnesses == {"w2"}
    with pytest.raises(QuorumError, match="cosigned by w2; the policy's quorum needs 2 of group"):
        require_quorum(one, VKEY, policy)
    with pytest.raises(QuorumError, match="cosigned by no witness of the policy"):
        require_quorum(LOG.checkpoint(), VKEY, policy)


def test_a_policy_of_another_log() -> None:
    other = make_log(0, origin="other.example.org/p/x", seed=2).signer.vkey
    policy = parse_policy(witness_policy(other, [X1], 1))
    with pytest.raises(PolicyLogError, match="another log"):
        check_witnessed(LOG.witnessed_checkpoint(None, [X1]), VKEY, policy)
    anylog = parse_policy(witness_policy(None, [X1], 1))
    assert require_quorum(LOG.witnessed_checkpoint(None, [X1]), VKEY, anylog).quorum_met


def test_a_copied_cosignature_is_refused_not_ignored() -> None:
    policy = parse_policy(witness_policy(VKEY, [X1], 1))
    older = LOG.witnessed_checkpoint(2, [X1])
    lines = older[older.rfind(b"\n\n") + 2 :].split(b"\n", 1)[1]  # X1's line, not the log's
    with pytest.raises(CosignatureError):
        check_witnessed(LOG.checkpoint() + lines, VKEY, policy)
