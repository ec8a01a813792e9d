"""C2SP tlog-policy (https://c2sp.org/tlog-policy): which logs and witnesses, and the quorum.

A policy file names the logs it accepts, the witnesses (each with a name and a cosignature
vkey, docs/formats.md §20), groups of them with thresholds, and the quorum a checkpoint's
verified cosignatures must meet (docs/formats.md §21)::

    log <vkey> [<url>]
    witness <name> <vkey> [<url>]
    group <name> <k|any|all> <member>...
    quorum <name|none>

Parsing is strict and fails closed: besides the spec's rules (names defined before use, one
namespace, ``none`` reserved, each member once per group, ``1 <= k <= n``, exactly one quorum,
no duplicate keys, only tab, newline and printable or high-bit bytes), Samleng requires UTF-8,
Ed25519 keys (type 0x01 for logs, 0x04 for witnesses) and canonical decimal thresholds, and
bounds the file's size and number of definitions.
"""

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from samleng.crypto.cosignature import (
    CosignedCheckpoint,
    WitnessVerifier,
    parse_witness_vkey,
    verify_cosigned_checkpoint,
)
from samleng.crypto.errors import PolicyFormatError, PolicyLogError, QuorumError, VerificationError
from samleng.crypto.note import NoteVerifier, parse_vkey

MAX_POLICY_BYTES = 64 << 10
# The spec asks implementations to support at least 32 of each; far more than one petition needs.
MAX_DEFINITIONS = 256
NONE = "none"
_WHITESPACE = re.compile(r"[ \t]+")
_DISALLOWED_BYTES = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")
_DECIMAL = re.compile(r"[1-9][0-9]{0,8}")


@dataclass(frozen=True, kw_only=True)
class PolicyLog:
    """A log the policy accepts: its checkpoint key, and where to reach it (optional)."""

    verifier: NoteVerifier
    url: str | None = None


@dataclass(frozen=True, kw_only=True)
class PolicyWitness:
    """A witness of the policy: its name there, its cosignature key and submission prefix."""

    name: str
    verifier: WitnessVerifier
    url: str | None = None


@dataclass(frozen=True, kw_only=True)
class PolicyGroup:
    """A group that has witnessed a checkpoint when ``threshold`` of its members have."""

    name: str
    threshold: int
    members: tuple[str, ...]

    @property
    def spelled(self) -> str:
        """Return the threshold as a policy file writes it: ``all``, ``any`` or ``k``."""
        if self.threshold == len(self.members):
            return "all"
        return "any" if self.threshold == 1 else str(self.threshold)


def _check_url(url: str | None, where: str) -> None:
    """Refuse a URL that a policy line could not carry."""
    if url is not None and (not url or _WHITESPACE.search(url) or "\n" in url):
        raise PolicyFormatError(f"{where}: a URL must be one non-empty word")


@dataclass(frozen=True, kw_only=True)
class Policy:
    """A parsed, consistent policy. Groups are in definition order (members come first)."""

    logs: tuple[PolicyLog, ...] = ()
    witnesses: tuple[PolicyWitness, ...] = ()
    groups: tuple[PolicyGroup, ...] = ()
    quorum: str = NONE

    def __post_init__(self) -> None:
        """Check the rules of the spec that a hand-built policy could break (PolicyFormatError)."""
        if len(self.logs) > MAX_DEFINITIONS or len(self.witnesses) > MAX_DEFINITIONS:
            raise PolicyFormatError(f"more than {MAX_DEFINITIONS} logs or witnesses")
        if len(self.groups) > MAX_DEFINITIONS:
            raise PolicyFormatError(f"more than {MAX_DEFINITIONS} groups")
        kinds: dict[str, str] = {}
        log_keys: set[bytes] = set()
        for log in self.logs:
            _check_url(log.url, f"log {log.verifier.name}")
            if log.verifier.public_key in log_keys:
                raise PolicyFormatError(f"log {log.verifier.name}: its key is listed twice")
            log_keys.add(log.verifier.public_key)
        witness_keys: set[bytes] = set()
        for witness in self.witnesses:
            _define(kinds, witness.name, "witness")
            _check_url(witness.url, f"witness {witness.name}")
            if witness.verifier.public_key in witness_keys:
                raise PolicyFormatError(f"witness {witness.name}: its key is listed twice")
            witness_keys.add(witness.verifier.public_key)
        for group in self.groups:
            _check_group(kinds, group)
            _define(kinds, group.name, "group")
        if self.quorum != NONE and self.quorum not in kinds:
            raise PolicyFormatError(f"quorum {self.quorum!r} names no witness or group")

    def witness_verifiers(self) -> list[WitnessVerifier]:
        """Return every witness's cosignature key."""
        return [witness.verifier for witness in self.witnesses]

    def witness_names(self) -> dict[tuple[str, bytes], str]:
        """Map each witness key's (key name, key ID) to the witness's name in the policy."""
        return {(w.verifier.name, w.verifier.key_id): w.name for w in self.witnesses}

    def lists_log(self, vkey: str) -> bool:
        """Return whether this policy accepts the log of ``vkey`` (any log, if it lists none)."""
        if not self.logs:
            return True
        verifier = parse_vkey(vkey)
        return any(log.verifier == verifier for log in self.logs)

    def satisfied(self, witnessed: Collection[str]) -> bool:
        """Return whether witnesses of these policy names, having cosigned, meet the quorum."""
        if self.quorum == NONE:
            return True
        groups = {group.name: group for group in self.groups}
        memo: dict[str, bool] = {}

        def met(name: str) -> bool:
            if name not in memo:
                group = groups.get(name)
                if group is None:
                    memo[name] = name in witnessed
                else:
                    memo[name] = sum(map(met, group.members)) >= group.threshold
            return memo[name]

        return met(self.quorum)

    def describe(self, name: str | None = None) -> str:
        """Return in words what the quorum (or group ``name``) needs."""
        name = self.quorum if name is None else name
        if name == NONE:
            return "no cosignature"
        group = next((g for g in self.groups if g.name == name), None)
        if group is None:
            return f"witness {name}"
        members = ", ".join(group.members)
        if group.threshold == len(group.members) and len(group.members) > 1:
            return f"all of group {name} ({members})"
        return f"{group.threshold} of group {name} ({members})"


def _define(kinds: dict[str, str], name: str, kind: str) -> None:
    """Add a witness or group name to the policy's one namespace."""
    if not name or _WHITESPACE.search(name) or "\n" in name or name.startswith("#"):
        raise PolicyFormatError(f"{kind} name {name!r} is not one word")
    if name == NONE:
        raise PolicyFormatError(f"{kind} name 'none' is reserved for 'quorum none'")
    if name in kinds:
        raise PolicyFormatError(f"{kind} name {name!r} is already defined")
    kinds[name] = kind


def _check_group(kinds: Mapping[str, str], group: PolicyGroup) -> None:
    """Check a group's members are defined already, listed once each, and its threshold fits."""
    if not group.members:
        raise PolicyFormatError(f"group {group.name!r} has no members")
    for member in group.members:
        if member == NONE:
            raise PolicyFormatError(f"group {group.name!r}: 'none' cannot be a member")
        if member not in kinds:
            raise PolicyFormatError(
                f"group {group.name!r}: member {member!r} is not defined on an earlier line"
            )
    if len(set(group.members)) != len(group.members):
        raise PolicyFormatError(f"group {group.name!r} lists a member twice")
    if not 1 <= group.threshold <= len(group.members):
        raise PolicyFormatError(
            f"group {group.name!r}: threshold {group.threshold} is not between 1 and "
            f"{len(group.members)}"
        )


def _threshold(word: str, members: int, where: str) -> int:
    """Read a group threshold: ``any``, ``all`` or a canonical decimal."""
    if word == "any":
        return 1
    if word == "all":
        return members
    if not _DECIMAL.fullmatch(word):
        raise PolicyFormatError(f"{where}: threshold {word!r} is not any, all or a number")
    return int(word)


def _decode(data: bytes) -> str:
    """Check the policy's bytes and return its text."""
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyFormatError(f"policy is larger than {MAX_POLICY_BYTES} bytes")
    bad = _DISALLOWED_BYTES.search(data)
    if bad:
        line = data.count(b"\n", 0, bad.start()) + 1
        raise PolicyFormatError(f"line {line}: control character 0x{bad.group()[0]:02x}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyFormatError("policy is not UTF-8") from None


def parse_policy(data: bytes) -> Policy:
    """Parse a tlog-policy file; PolicyFormatError naming the line if it is not acceptable."""
    logs: list[PolicyLog] = []
    witnesses: list[PolicyWitness] = []
    groups: list[PolicyGroup] = []
    kinds: dict[str, str] = {}
    quorum: str | None = None
    for number, raw in enumerate(_decode(data).split("\n"), start=1):
        line = raw.strip(" \t")
        if not line or line.startswith("#"):
            continue
        where = f"line {number}"
        words = _WHITESPACE.split(line)
        keyword, args = words[0], words[1:]
        try:
            if keyword == "log" and len(args) in (1, 2):
                logs.append(PolicyLog(verifier=parse_vkey(args[0]), url=_url(args[1:])))
            elif keyword == "witness" and len(args) in (2, 3):
                verifier = parse_witness_vkey(args[1])
                _define(kinds, args[0], "witness")
                witnesses.append(PolicyWitness(name=args[0], verifier=verifier, url=_url(args[2:])))
            elif keyword == "group" and len(args) >= 3:
                members = tuple(args[2:])
                threshold = _threshold(args[1], len(members), where)
                group = PolicyGroup(name=args[0], threshold=threshold, members=members)
                _check_group(kinds, group)
                _define(kinds, group.name, "group")
                groups.append(group)
            elif keyword == "quorum" and len(args) == 1:
                if quorum is not None:
                    raise PolicyFormatError("a second quorum line")
                if args[0] != NONE and args[0] not in kinds:
                    raise PolicyFormatError(f"quorum {args[0]!r} is not defined on an earlier line")
                quorum = args[0]
            elif keyword in ("log", "witness", "group", "quorum"):
                raise PolicyFormatError(f"wrong number of fields for {keyword}")
            else:
                raise PolicyFormatError(f"unknown keyword {keyword!r}")
        except VerificationError as err:
            raise PolicyFormatError(f"{where}: {err}") from None
        if len(logs) > MAX_DEFINITIONS or len(kinds) > 2 * MAX_DEFINITIONS:
            raise PolicyFormatError(f"{where}: too many definitions")
    if quorum is None:
        raise PolicyFormatError("no quorum line")
    return Policy(logs=tuple(logs), witnesses=tuple(witnesses), groups=tuple(groups), quorum=quorum)


def _url(rest: list[str]) -> str | None:
    """Return the optional URL field."""
    return rest[0] if rest else None


def format_policy(policy: Policy) -> bytes:
    """Write a policy as a tlog-policy file that :func:`parse_policy` reads back equal."""
    lines: list[str] = []
    for log in policy.logs:
        lines.append(" ".join(["log", log.verifier.vkey, *([log.url] if log.url else [])]))
    for witness in policy.witnesses:
        url = [witness.url] if witness.url else []
        lines.append(" ".join(["witness", witness.name, witness.verifier.vkey, *url]))
    for group in policy.groups:
        lines.append(" ".join(["group", group.name, group.spelled, *group.members]))
    lines.append(f"quorum {policy.quorum}")
    return "".join(line + "\n" for line in lines).encode("utf-8")


@dataclass(frozen=True, kw_only=True)
class Witnessed:
    """A checkpoint checked against a policy: its verified cosigners (policy names) and quorum."""

    cosigned: CosignedCheckpoint
    witnesses: frozenset[str]
    quorum_met: bool


def check_witnessed(note: bytes, log_vkey: str, policy: Policy) -> Witnessed:
    """Verify a checkpoint and its cosignatures under ``policy``; report whether the quorum is met.

    Raises PolicyLogError when the policy lists logs but not this one, and the errors of
    :func:`~samleng.crypto.cosignature.verify_cosigned_checkpoint`.
    """
    if not policy.lists_log(log_vkey):
        raise PolicyLogError(
            "the witness policy does not list this log's key: it is the policy of another log"
        )
    cosigned = verify_cosigned_checkpoint(note, log_vkey, policy.witness_verifiers())
    names = policy.witness_names()
    witnesses = frozenset(names[(c.witness, c.key_id)] for c in cosigned.cosignatures)
    return Witnessed(cosigned=cosigned, witnesses=witnesses, quorum_met=policy.satisfied(witnesses))


def require_quorum(note: bytes, log_vkey: str, policy: Policy) -> Witnessed:
    """Like :func:`check_witnessed`, but raise QuorumError unless the quorum is met."""
    witnessed = check_witnessed(note, log_vkey, policy)
    if not witnessed.quorum_met:
        have = ", ".join(sorted(witnessed.witnesses)) or "no witness of the policy"
        raise QuorumError(
            f"the checkpoint of size {witnessed.cosigned.checkpoint.size} is cosigned by {have}; "
            f"the policy's quorum needs {policy.describe()}"
        )
    return witnessed
