"""Each petition's dedup key: made at creation, wrapped under a key file of the petition's
own (service/platform/vault.py), unwrapped to sign, and dead once forget destroys the file.

Takes sessions and the vault as arguments; imports nothing of Flask.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from samleng.crypto.keywrap import new_dedup_key, unwrap_key, wrap_key
from samleng.service.platform.errors import PetitionStateError
from samleng.service.platform.models import Petition, PetitionStatus
from samleng.service.platform.vault import Vault


def new_wrapped_dedup_key(vault: Vault, origin: str) -> tuple[str, bytes]:
    """A fresh dedup key for the petition at ``origin``: the name of its new key file, and
    the key wrapped under it."""
    return _wrap_under_new_key_file(vault, origin, new_dedup_key())


def dedup_key(petition: Petition, vault: Vault) -> bytes:
    """The petition's dedup key, unwrapped with its key file (or, for a petition from before
    key files, with the master key)."""
    if petition.wrapped_dedup_key is None:
        raise PetitionStateError(f"petition {petition.slug!r} has no dedup key")
    if petition.dedup_key_file is not None:
        wrapping = vault.read(petition.dedup_key_file)
    else:
        wrapping = vault.master_key
    return unwrap_key(wrapping, petition.wrapped_dedup_key, petition.origin)


def _wrap_under_new_key_file(vault: Vault, origin: str, key: bytes) -> tuple[str, bytes]:
    """A new key file of random name, and ``key`` wrapped under the key it holds.

    A random name, not the slug: a key file can then never be mistaken for another
    petition's, even when two organisers race to create the same slug.
    """
    name = f"dedup-{secrets.token_hex(8)}"
    return name, wrap_key(vault.create_random(name), key, origin)


def move_dedup_keys_to_files(session: Session, vault: Vault) -> list[str]:
    """Give every petition still wrapped under the master key a key file of its own (after
    an upgrade; `samleng init` does it). Returns their slugs; the caller commits.

    The old wrapped key stays in the database's WAL and in backups made before: there it
    opens with the master key until those are gone (SECURITY.md says so).
    """
    moved = []
    for petition in session.scalars(
        select(Petition).where(
            Petition.dedup_key_file.is_(None), Petition.wrapped_dedup_key.is_not(None)
        )
    ):
        key = dedup_key(petition, vault)
        petition.dedup_key_file, petition.wrapped_dedup_key = _wrap_under_new_key_file(
            vault, petition.origin, key
        )
        moved.append(petition.slug)
    session.flush()
    return moved


def destroy_forgotten_key_files(session: Session, vault: Vault) -> list[str]:
    """Destroy the key files of forgotten petitions left on this machine (an app server
    other than the one that ran forget keeps a copy). Returns their names.

    Only files a forgotten petition names: a key file whose petition is being created has no
    committed row yet, and must not be taken for an orphan.
    """
    destroyed = []
    for name in session.scalars(
        select(Petition.dedup_key_file).where(
            Petition.status == PetitionStatus.FORGOTTEN, Petition.dedup_key_file.is_not(None)
        )
    ):
        if name is not None and vault.destroy(name):
            destroyed.append(name)
    return destroyed
