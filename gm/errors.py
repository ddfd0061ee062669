"""Errors a user can cause: each carries one sentence saying what to do."""


class GMError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits 2; the app shows it."""
