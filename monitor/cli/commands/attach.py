"""What the commands that attach to an engine share (`tui --connect`, `web`, `probe --from`):
the engine's URL and the token, as the flags give them.

The token is read by reference, as every secret is (monitor.core.secrets): the flags name an
environment variable or a file, never the token itself, so it stays out of shell history and
`ps`; no message here quotes it.
"""

from __future__ import annotations

import argparse
import re

from yarl import URL

from monitor.api.client import engine_url
from monitor.core.options import OptionError
from monitor.core.secrets import secret_env, secret_file


class AttachError(Exception):
    """A flag of an attaching command that cannot be used: the message says which and why."""


def target(text: str) -> URL:
    try:
        return engine_url(text)
    except ValueError as exc:
        raise AttachError(str(exc)) from None


def token(args: argparse.Namespace) -> str | None:
    """The bearer token the flags point to, or None when they name none."""
    try:
        if args.token_env:
            ref = secret_env(args.token_env)
        elif args.token_file:
            ref = secret_file(args.token_file)
        else:
            return None
        value = ref.reveal().strip()
    except OptionError as exc:
        raise AttachError(str(exc)) from None
    if not value:
        raise AttachError(f"{ref} is empty: it should hold the bearer token")
    if not re.fullmatch(r"[!-~]+", value):
        # Said without the value: a header holding it could not be sent, and would be quoted.
        raise AttachError(
            f"the token in {ref} holds spaces or characters other than printable ASCII: "
            "a bearer token is one word"
        )
    return value
