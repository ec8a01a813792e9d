"""Errors raised by the service layer. Views turn them into translated pages."""


def N_(message: str) -> str:  # noqa: N802 (gettext's name for it)
    """Mark ``message`` for the catalogue (``make extract``) without translating it here:
    modules that load no Flask say it in English, and the view translates it."""
    return message


class Error(Exception):
    """Base class of the service's own errors."""


class ConfigError(Error):
    """The configuration is incomplete or inconsistent; the message names what is missing."""


class PetitionNotFound(Error):
    """No petition has this slug."""


class PetitionStateError(Error):
    """The petition is not in a state that allows this action (e.g. signing a closed petition)."""


class SlugUnavailable(Error, ValueError):
    """The slug is taken. The message never says by what, nor whether it is a hidden draft."""


class ClosingDateInPast(PetitionStateError, ValueError):
    """A petition's last day of signing (``closes_on``, UTC) is before today."""


class PetitionMisconfigured(PetitionStateError):
    """The petition's own settings make signing impossible (e.g. a phone region that does not
    exist); the signer is told the petition cannot take signatures, the operator the reason."""


class OrganisationError(Error, ValueError):
    """An organisation, or a petition's organisers, cannot be as asked; the message says why."""
