"""The errors raised by the crypto package: one base class, one subclass per failure."""

import enum


class Error(Exception):
    """Base class of every error raised by this package."""


class InvalidIdentifier(Error):
    """An email address or phone number that cannot be accepted."""


class InvalidEmail(InvalidIdentifier):
    """An email address that is malformed, too long or has nothing left after normalisation."""


class InvalidPhone(InvalidIdentifier):
    """A phone number that cannot be parsed or is not a valid number."""


class SealedBoxError(Error):
    """A sealed box (crypto/symmetric.py) that is cut short or does not open with this key."""


class KeyUnwrapError(Error):
    """A wrapped key that does not open with this master key and origin."""


class ReceiptFormatError(Error):
    """A receipt code that is not 16 bytes of base32."""


class DetailsTooLarge(Error):
    """Optional details whose canonical JSON does not fit the padded block."""


class PendingDecryptionError(Error):
    """A pending signature that does not open with its epoch's key, or is malformed."""


class DetailsDecryptionError(Error):
    """A details ciphertext that does not open with this key and context."""


class VerificationError(Error):
    """A log, proof, note or bundle that does not verify. The message says which check failed."""


class InclusionProofError(VerificationError):
    """A Merkle inclusion proof that does not lead from the leaf to the claimed root."""


class ConsistencyProofError(VerificationError):
    """A Merkle consistency proof that does not show the old tree is a prefix of the new one."""


class LeafFormatError(VerificationError):
    """A log leaf that is not 81 bytes, lacks the v1 prefix or has a kind this verifier refuses."""


class KeyProblem(enum.Enum):
    """What is wrong with a key string, for a caller that says it in its own words."""

    LAYOUT = "layout"  # not name+keyID+key (a signer key: not PRIVATE+KEY+…)
    NAME = "name"  # the name is empty or has a space or '+'
    KEY_ID = "key-id"  # the key ID is not 8 lower-case hex digits
    BASE64 = "base64"  # the key is not canonical base64
    TYPE = "type"  # no signature type byte, or another type than the caller wants
    KEY = "key"  # not a 32-byte Ed25519 public key or seed
    MISMATCH = "mismatch"  # the key ID does not match the name and the key


class KeyFormatError(VerificationError):
    """A signed-note verifier or signer key string that cannot be parsed. ``problem`` says
    which part is wrong (None where the key is fine but clashes with another)."""

    def __init__(self, message: str, problem: KeyProblem | None = None) -> None:
        super().__init__(message)
        self.problem = problem


class NoteFormatError(VerificationError):
    """A signed note that is not well formed (encoding, layout, signature lines)."""


class NoteSignatureError(VerificationError):
    """A signed note without a valid signature from the expected key."""


class CheckpointFormatError(VerificationError):
    """A checkpoint body that is not exactly origin, size and root hash, or a mismatched origin."""


class ProofFormatError(VerificationError):
    """A tlog-proof (receipt proof) file that is not well formed."""


class BundleError(VerificationError):
    """An export bundle that fails one named check; ``check`` names it for callers and tests."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check


class SplitViewError(VerificationError):
    """A checkpoint kept elsewhere (a signer's receipt) that the bundle's log contradicts: the log
    was rewritten or forked after it, or the bundle is of another log."""


class CosignatureError(VerificationError):
    """A witness cosignature that is malformed, or that a known witness key does not verify
    (C2SP tlog-cosignature; docs/formats.md §20)."""


class PolicyFormatError(VerificationError):
    """A witness policy file that is not a well-formed C2SP tlog-policy (docs/formats.md §21);
    the message names the line."""


class PolicyLogError(VerificationError):
    """A witness policy that lists logs, none of which is the log being verified."""


class QuorumError(VerificationError):
    """A checkpoint whose verified witness cosignatures do not meet the policy's quorum: its
    log may have shown this checkpoint to nobody else (docs/formats.md §21)."""


class TileFormatError(Error):
    """A tlog-tiles path or entry bundle that is not well formed (docs/formats.md §22)."""


class TileConflictError(Error):
    """A tile already written with other contents: the log changed under a published tile."""


class KeyFileError(Error):
    """An organiser key file that is not a well-formed samleng-organiser-key/v1 file."""


class PassphraseError(KeyFileError):
    """A key file that does not open with this passphrase (or whose contents were changed)."""


class DetailsFileError(Error):
    """An export-details file that cannot be read as ``u16be(len) || ct`` records."""


class SampleError(Error):
    """A sample audit that cannot be drawn (no signatures, k out of range, bad fraction)."""


class SeedError(SampleError):
    """A sample-audit seed that does not start with the final checkpoint's hash, or has no
    random value after it: nothing would show that the checkpoint was fixed before the seed."""


class CustodyError(Error):
    """Base class of the failures of coalition custody (k-of-n details, docs/formats.md §10.2)."""


class RecordFormatError(DetailsDecryptionError):
    """A version 2 sealed details record that is not well formed (label, k, n or length)."""


class ShareDecryptionError(DetailsDecryptionError):
    """An organisation's share that does not open with its key in this context: the record is
    of another petition, leaf or key, or it was changed."""


class ShareMismatchError(CustodyError):
    """A share whose value is not the one its record commits to: the shares file was changed,
    or the share belongs to another record or petition."""


class RecordTamperedError(DetailsDecryptionError):
    """A record whose shares check out but whose sealed details do not open with their key:
    the record's ciphertext was changed."""


class DuplicateShareError(CustodyError):
    """Two shares with the same share index (the same organisation's file given twice)."""


class TooFewSharesError(CustodyError):
    """Fewer shares than the petition's threshold k; ``missing`` says how many more are needed."""

    def __init__(self, message: str, *, needed: int, given: int) -> None:
        super().__init__(message)
        self.needed = needed
        self.given = given
        self.missing = needed - given


class WrongPetitionError(CustodyError):
    """A shares, details or key file that belongs to another petition or another set of keys."""


class SharesFileError(CustodyError):
    """A shares file that is not a well-formed samleng-shares/v1 file."""


class CustodyFormatError(CustodyError):
    """A petition's details member (in petition.json) that names no valid set of keys."""


class EndorsementError(VerificationError):
    """An endorsement record, or the bundle's endorsements.json, is not what §23 says."""
