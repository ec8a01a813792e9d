"""The limits of signing, checked by the signing views themselves on the limiter's storage:
per client and per petition (SigningLimits), confirmation mails per address (MailLimits).
The single use of each sign-form token is signing.formtoken's."""

from __future__ import annotations

from limits import parse_many
from limits.strategies import FixedWindowRateLimiter

from samleng.service.platform.ratelimit import (
    AlignedMemoryStorage,
    Client,
    ClientLimits,
    ClientPseudonyms,
    SharedStorage,
    hit_all,
)

CONFIRM_SCOPE = "public.confirm"


class SigningLimits:
    """The limits on signing, per client and per petition, checked on the limiter's storage.

    The same strategy (fixed windows aligned on the clock) and storage keys as flask-limiter
    would use, without its per-request machinery: resolving a route's limits, exemptions and
    its request context cost a signature more CPU than the storage hits themselves
    (bench/sign_throughput.py measures signing with these checks). While the storage fails,
    signing falls back like every other route: ``fallback`` per client (and the per-petition
    cap) in this process's memory.

    The two counts are taken at different points of a signature (service/web/public.py): every
    request counts against its client, at once; only a submission that passed every check
    of the form counts against the petition, just before its Argon2 work, so junk requests
    cannot use up a petition's signatures.
    """

    SCOPE = "public.sign"

    def __init__(
        self,
        storage: SharedStorage,
        *,
        per_client: str,
        per_petition: str,
        fallback: str,
        site_factor: int,
    ) -> None:
        self._storage = storage
        self._clients = ClientLimits(
            storage, per_client=per_client, site_factor=site_factor, fallback=fallback
        )
        self._shared = FixedWindowRateLimiter(storage.storage)
        self._local = FixedWindowRateLimiter(AlignedMemoryStorage())
        self._per_petition = parse_many(per_petition)

    def hit_client(self, client: Client) -> None:
        """Count one request to sign against its client (and an IPv6 client's /48);
        TooManyRequests (with retry_after) beyond the limits."""
        self._clients.hit(client, self.SCOPE)

    def hit_confirmation(self, client: Client) -> None:
        """Count one confirmed link against its client, as many as signatures but counted
        apart (confirming one counts a signature); TooManyRequests beyond."""
        self._clients.hit(client, CONFIRM_SCOPE, site=False)

    def hit_petition(self, slug: str) -> None:
        """Count one checked submission against the petition's cap; TooManyRequests beyond."""
        key = "petition:" + slug
        self._storage.run(
            lambda: hit_all(self._shared, self._per_petition, key, self.SCOPE),
            lambda: hit_all(self._local, self._per_petition, key, self.SCOPE),
        )


class MailLimits:
    """At most ``per_address`` confirmation mails to one address (normalised) per period.

    The key is the address's HMAC under the day's rate-limit key, as for clients. Beyond the
    bound no mail is sent, and the signer's page does not change (SECURITY.md says what this
    leaves).
    """

    SCOPE = "public.mail"

    def __init__(self, storage: SharedStorage, keys: ClientPseudonyms, *, per_address: str) -> None:
        self._storage = storage
        self._keys = keys
        self._shared = FixedWindowRateLimiter(storage.storage)
        self._local = FixedWindowRateLimiter(AlignedMemoryStorage())
        self._per_address = parse_many(per_address)

    def allow(self, address: str) -> bool:
        """Count one mail to ``address``; False (and nothing counted) beyond the bound."""
        key = self._keys.pseudonym("mail", address)

        def count(strategy: FixedWindowRateLimiter) -> bool:
            return all(strategy.hit(item, "samleng", key, self.SCOPE) for item in self._per_address)

        return self._storage.run(lambda: count(self._shared), lambda: count(self._local))
