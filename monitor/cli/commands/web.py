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

from monitor.api.client import is_loopback
from monitor.cli.commands import attach
from monitor.cli.parsing import EXIT_UNKNOWN

INSTALL = "commwatch web needs textual-serve: pip install 'commwatch[web]'"


def run(args: argparse.Namespace) -> int:
    try:
        from textual_serve.server import Server
    except ImportError:
        print(INSTALL, file=sys.stderr)
        return EXIT_UNKNOWN
    try:
        url = attach.target(args.connect)
        attach.token(args)  # now, not in every tab: a wrong reference is one line here
        host, port = listen_address(args.listen)
    except (attach.AttachError, ValueError) as exc:
        print(f"commwatch web: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    if not (is_loopback(host) or args.allow_remote):
        print(
            f"commwatch web: {host} is not a loopback address, and the dashboard served there "
            "has no login of its own: put an authenticating TLS proxy in front and add "
            "--allow-remote",
            file=sys.stderr,
        )
        return EXIT_UNKNOWN
    Server(tab_command(args, str(url)), host=host, port=port, title=f"commwatch · {url}").serve()
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
    return shlex.join(words)


def listen_address(text: str) -> tuple[str, int]:
    """HOST:PORT ([v6]:PORT for IPv6) as a host and a port number."""
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen {text!r}: write HOST:PORT, e.g. 127.0.0.1:8110 or [::1]:8110")
    return host.removeprefix("[").removesuffix("]"), int(port)
