"""Errors of the admin's service layer."""

from __future__ import annotations

from samleng.service.platform.errors import Error


class LoginFailed(Error):
    """Wrong name, password or code, or a disabled account. One error for all, on purpose."""


class PasswordPolicyError(Error, ValueError):
    """A new password that is too short or too long; the message says which."""


class AccountError(Error, ValueError):
    """An account cannot be created or changed as asked; the message says why."""


class WrongPassword(LoginFailed):
    """The current password, asked again to confirm a change to the account, is wrong."""


class WrongCode(LoginFailed):
    """The enrolled authenticator's code, asked to confirm a change, is wrong or used."""
