"""`commwatch web --connect URL`: the dashboard of a running engine in browsers.

textual-serve runs one `commwatch tui --connect URL` per browser tab and shows its screen with
xterm.js: every tab is a viewer of its own, attached to the one engine, and none probes or
notifies. The token goes to each tab's process by the same reference it was given here (the
variable's name, the file's path), never on a command line.

The web server has no login of its own: whoever reaches it uses the token it was given. So it
listens on loopback unless told otherwise (`--allow-remote`, behind a reverse proxy that
authenticates and terminates TLS).
"""

from __future__ import annotations

import argparse
import shlex
import sys

from monitor.cli.commands import attach
from monitor.cli.parsing import EXIT_UNKNOWN

INSTALL = "commwatch web needs textual-serve: pip install 'commwatch[web]'"


def run(args: argparse.Namespace) -> int:
    try:
        from textual_serve.server import Server
    except ImportError:
        print(INSTALL, file=sys.stderr)
        return EXIT_UNKNOWN
    listen = args.listen
    try:
        url = attach.target(args.connect)
        attach.token(args)  # now, not in every tab: a wrong reference is one line here
    except attach.AttachError as exc:
        print(f"commwatch web: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    if listen.port == 0:
        print("commwatch web: --listen needs a port browsers can be told", file=sys.stderr)
        return EXIT_UNKNOWN
    if not (listen.is_loopback or args.allow_remote):
        print(
            f"commwatch web: {listen.host} is not a loopback address, and the dashboard served "
            "there has no login of its own: put an authenticating TLS proxy in front and add "
            "--allow-remote",
            file=sys.stderr,
        )
        return EXIT_UNKNOWN
    title = f"commwatch · {url}"
    Server(tab_command(args, str(url)), host=listen.host, port=listen.port, title=title).serve()
    return 0


def tab_command(args: argparse.Namespace, url: str) -> str:
    """The command each browser tab runs: this commwatch's `tui --connect`."""
    words = [sys.executable, "-m", "monitor.cli", "tui", "--connect", url]
    if args.token_env:
        words += ["--token-env", args.token_env]
    elif args.token_file:
        words += ["--token-file", args.token_file]
    if args.ca_file:
        words += ["--ca-file", args.ca_file]
    for flag in ("only", "site", "tag", "kind"):
        for value in getattr(args, flag) or ():
            words += [f"--{flag}", value]
    return shlex.join(words)
