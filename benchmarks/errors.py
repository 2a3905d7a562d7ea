"""Mistakes in what the user gave (a config, a data folder, a flag, a results folder), as opposed to bugs."""


class UserError(Exception):
    """A mistake the user can fix; its message names the input and the fix. The CLI prints the message as
    one line, without a traceback (`-v` shows it)."""
