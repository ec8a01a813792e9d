"""Samleng's cryptography: pure functions over bytes, no web framework and no database.

Everything an auditor or a key holder needs lives here, so that this package could be
published and reviewed on its own. Keys, salts and parameters are always arguments.
"""
