"""Errors raised by the service layer. Views turn them into translated pages."""

from collections.abc import Callable


def N_(message: str) -> str:  # noqa: N802 (gettext's name for it)
    """Mark ``message`` for the catalogue (``make extract``) without translating it here:
    modules that load no Flask say it in English, and the view translates it."""
    return message


class Error(Exception):
    """Base class of the service's own errors.

    Raised as ``Error(N_("… %(name)s …"), name=value)``, an error says itself in English
    (``str``: logs, the command line) and keeps its message and values apart, so that a view
    shows it in the reader's language (:func:`translated`). A message without values is
    taken as it is (no ``%`` formatting).
    """

    def __init__(self, message: str = "", /, **values: object) -> None:
        super().__init__(message % values if values else message)
        self.message = message
        self.values = values


class InputError(Error, ValueError):
    """What was asked for cannot be done as given; the message says why."""


def translated(error: BaseException, gettext: Callable[[str], str]) -> str:
    """The error's message in the reader's language, as a sentence: ``gettext`` finds the
    message in the catalogue (an unmarked one stays in English), then its values go in."""
    if isinstance(error, Error) and error.message:
        text = gettext(error.message)
        text = text % error.values if error.values else text
    else:
        text = str(error)
    text = text.strip()
    if not text or text.endswith((".", "!", "?", "។")):
        return text
    if text[0].isascii() and text[0].islower():
        text = text[0].upper() + text[1:]
    # A sentence ends with a full stop: Khmer's khan after Khmer, a period after the rest.
    return text + ("។" if "\u1780" <= text[-1] <= "\u17ff" else ".")


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
