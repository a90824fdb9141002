"""Secrets by reference: communities, passphrases and tokens stay out of the inventory.

An option names where its secret lives (`community_env: NAME`, `auth_passphrase_file: PATH`, a
header `{env: NAME}`); the value is read at the moment of use and never printed: a `SecretRef`
shows only its reference, and no error message quotes what was read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.core import yamlnodes
from monitor.core.files import read_bounded
from monitor.core.options import OptionError, is_number, path, text, type_name

MAX_SECRET_BYTES = 64 * 1024


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives. Only the reference is ever printed; the value is read at use."""

    source: str  # "env" or "file"
    name: str

    def __repr__(self) -> str:
        return f"<secret {self.source}:{self.name}>"

    __str__ = __repr__

    def reveal(self) -> str:
        """The secret as text (a header value, a passphrase for OpenSSL)."""
        try:
            return self.reveal_bytes().decode("utf-8")
        except UnicodeDecodeError:
            # From None: the decoding error would quote a byte of the secret and its position.
            where = "environment variable" if self.source == "env" else "secret file"
            raise OptionError(
                f"{where} {self.name} is not UTF-8 text", "store the secret as UTF-8"
            ) from None

    def reveal_bytes(self) -> bytes:
        """The secret as the bytes stored: SNMP communities and passphrases are octet strings,
        and agents configured with bytes that are not UTF-8 exist."""
        if self.source == "env":
            value = os.environ.get(self.name)
            if value is None:
                raise OptionError(
                    f"environment variable {self.name} is not set",
                    "export it before starting commwatch",
                )
            return os.fsencode(value)  # the bytes the environment holds, undecoded
        try:
            return read_bounded(self.name, MAX_SECRET_BYTES).strip()
        except OSError as exc:
            raise OptionError(
                f"cannot read secret file {self.name}: {exc.strerror}",
                "check the path and its permissions",
            ) from None

    def check_available(self) -> None:
        """Fail early, at load time, when the secret cannot be had; never reveals it."""
        if self.source == "env":
            if self.name not in os.environ:
                raise OptionError(
                    f"environment variable {self.name} is not set",
                    "export it before starting commwatch, or use a *_file key",
                )
        elif not os.access(self.name, os.R_OK):
            raise OptionError(
                f"secret file {self.name} does not exist or is not readable",
                "check the path; relative paths start at the inventory's folder",
            )
        elif not Path(self.name).is_file() or Path(self.name).stat().st_size > MAX_SECRET_BYTES:
            # A device such as /dev/zero would never end, and no secret is this large.
            raise OptionError(
                f"secret file {self.name} is not a regular file of at most "
                f"{MAX_SECRET_BYTES} bytes",
                "name the file holding just the secret",
            )


def secret_env(value: Any) -> SecretRef:
    name = text(value)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        # Not repeated: what was written in place of a name is often the secret itself.
        raise OptionError(
            "this is not an environment variable name (letters, digits and _; not shown, in"
            " case it is the secret itself)",
            "name the variable, e.g. SNMP_COMMUNITY, not its value",
        )
    return SecretRef("env", name)


def secret_file(value: Any) -> SecretRef:
    return SecretRef("file", path(value))


def _secret_reference(value: str) -> dict[str, Any] | None:
    """`{env: NAME}` or `{file: PATH}` in a `Name: value` line, read as the inventory's mapping
    form reads it; any other value, JSON included, is the header's literal text."""
    if not (value.startswith("{") and value.endswith("}")):
        return None
    loaded = yamlnodes.read_value(value)
    if isinstance(loaded, dict) and len(loaded) == 1 and next(iter(loaded)) in ("env", "file"):
        return loaded
    return None


def headers(value: Any) -> tuple[tuple[str, str | SecretRef], ...]:
    """HTTP headers as a mapping, or as `Name: value` lines (the CLI form).

    A header value may be `{env: NAME}` or `{file: PATH}` so tokens stay out of the inventory.
    """
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        pairs: dict[str, Any] = {}
        for line in value:
            name, sep, rest = text(line).partition(":")
            if not sep:
                raise OptionError(f"{line!r} is not a header line", "write 'Name: value'")
            pairs[name.strip()] = _secret_reference(rest.strip()) or rest.strip()
        value = pairs
    if not isinstance(value, dict):
        raise OptionError(
            f"expected a mapping of header names to values, got {type_name(value)}",
            "write e.g. headers: {Accept: application/json}",
        )
    result: list[tuple[str, str | SecretRef]] = []
    for name, raw in value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            raise OptionError(f"{name!r} is not a valid header name", "use letters, digits and -")
        if isinstance(raw, dict):
            if len(raw) != 1 or next(iter(raw)) not in ("env", "file"):
                raise OptionError(
                    f"header {name} must be text or {{env: NAME}} / {{file: PATH}}",
                    "keep tokens out of the inventory with env: or file:",
                )
            source, ref = next(iter(raw.items()))
            result.append((name, secret_env(ref) if source == "env" else secret_file(ref)))
        elif isinstance(raw, str) or is_number(raw):
            result.append((name, str(raw)))
        else:
            raise OptionError(
                f"header {name} has {type_name(raw)} as its value", "write the value as text"
            )
    return tuple(result)
