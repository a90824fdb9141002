"""Typed option declarations shared by the inventory loader and the `commwatch probe` flags.

A probe declares its options once, as a frozen dataclass whose fields are made with `option()`.
The loader validates inventory keys against those fields and the CLI turns the same fields into
flags (`expect_status` -> `--expect-status`), so the two can never drift apart. Every parser takes
a YAML-typed value (the CLI feeds flag text through the YAML scalar reader first) and raises
`OptionError` with a message and a hint on bad input.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import decimal
import functools
import ipaddress
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeGuard, TypeVar, overload

from monitor.core.text import bounded_message


class OptionError(ValueError):
    """A value that cannot be accepted, with a hint on how to fix it.

    `key` names the option at fault when the error is raised by a cross-field check rather than
    by the parser of the key itself.
    """

    def __init__(self, message: str, hint: str = "", key: str | None = None) -> None:
        # Bounded here, once: the value at fault may be a 5,000-digit flag or a YAML scalar.
        message, hint = bounded_message(message), bounded_message(hint)
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.key = key

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


Parser = Callable[[Any], Any]
T = TypeVar("T")


@overload
def is_number(value: object, *, whole: Literal[True]) -> TypeGuard[int]: ...
@overload
def is_number(value: object, *, whole: bool = False) -> TypeGuard[int | float]: ...
def is_number(value: object, *, whole: bool = False) -> bool:
    """Whether `value` is a number as an inventory, a flag or an observation means one: an int
    (with `whole`, only an int), or a finite float. Never a bool: Python's True is 1, but `true`
    counts nothing. Never NaN or infinity: every comparison with NaN is false, so it would pass
    any range or threshold."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return not whole and isinstance(value, float) and math.isfinite(value)


@dataclass(frozen=True)
class OptionSpec:
    """What the loader and the CLI need to know about one option."""

    name: str
    parse: Parser
    help: str
    metavar: str
    required: bool
    repeatable: bool
    default: Any
    written: str | None = None  # the default as a user writes it, when declared so


def option(
    default: Any = dataclasses.MISSING,
    *,
    parse: Parser,
    help: str,
    metavar: str = "VALUE",
    repeatable: bool = False,
) -> Any:
    """Declare an option field. `repeatable` options take a list (a repeated flag on the CLI).

    A default given as text is written as a user writes the key (`"15m"`, `"200-399"`): it is
    parsed here by `parse`, and help shows it as written."""
    written = default if isinstance(default, str) else None
    if written is not None:
        default = parse(written)
    metadata = {
        "parse": parse,
        "help": help,
        "metavar": metavar,
        "repeatable": repeatable,
        "written": written,
    }
    if isinstance(default, list | dict | set):
        raise TypeError("use a tuple or None as the default of a repeatable option")
    return dataclasses.field(default=default, metadata=metadata)


@functools.cache
def option_specs(options_class: type) -> tuple[OptionSpec, ...]:
    """The declared options of a probe's options dataclass, in declaration order."""
    specs = []
    # Inherited keys (e.g. the certificate keys) come first in a dataclass; the target leads.
    fields = sorted(dataclasses.fields(options_class), key=lambda f: f.name != "target")
    for f in fields:
        if "parse" not in f.metadata:
            continue
        specs.append(
            OptionSpec(
                name=f.name,
                parse=f.metadata["parse"],
                help=f.metadata["help"],
                metavar=f.metadata["metavar"],
                required=f.default is dataclasses.MISSING,
                repeatable=f.metadata["repeatable"],
                default=None if f.default is dataclasses.MISSING else f.default,
                written=f.metadata["written"],
            )
        )
    return tuple(specs)


def build_options(options_class: type, values: Mapping[str, Any]) -> Any:
    """Make an options instance from already-parsed values; runs the class's `validate()`."""
    instance = options_class(**values)
    validate = getattr(instance, "validate", None)
    if validate is not None:
        validate()
    return instance


# --- parsers -------------------------------------------------------------------------------

# The duration rule, one for every duration key, flag and command (README "Durations"):
# - a duration is a number with a unit, ms, s, m, h or d, or several of them added (`1m30s`);
# - a bare number is seconds, as a monitoring plugin's `-t 3` and YAML's `timeout: 10` mean,
#   whether YAML or the command line gave it as a number or as digits;
# - where a bare number of seconds is implausible, a latency threshold above 30 (`500` is
#   surely `500ms`), it is an error that suggests the unit, never a silent 500 seconds;
# - zero, negative, infinite and absurdly long (over ten years) durations are errors.
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_PART = re.compile(rf"({_NUMBER})(ms|s|m|h|d)")
_BARE_NUMBER = re.compile(rf"[+-]?{_NUMBER}")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_HINT = "write a duration such as 250ms, 30s, 5m, 1h or 1m30s"
_LONGEST = 3650 * 86400.0
LATENCY_BARE_LIMIT = 30.0


def duration_parser(
    bare_limit: float | None = None, what: str = "duration"
) -> Callable[[Any], float]:
    """A duration parser under the rule above; bare numbers of seconds above `bare_limit` are
    refused as implausible for `what`."""

    def parse(value: Any) -> float:
        if not (is_number(value) or isinstance(value, str)):
            raise OptionError(f"expected a duration, got {type_name(value)}", _DURATION_HINT)
        text_value = value.strip().replace(" ", "") if isinstance(value, str) else ""
        bare = not isinstance(value, str) or _BARE_NUMBER.fullmatch(text_value) is not None
        if bare:
            seconds = _seconds(value)
        else:
            parts = _DURATION_PART.findall(text_value)
            if not text_value or "".join(n + u for n, u in parts) != text_value:
                raise OptionError(f"{value!r} is not a duration", _DURATION_HINT)
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
        if not math.isfinite(seconds) or seconds > _LONGEST:
            raise OptionError("the duration is longer than ten years", "write at most 3650d")
        if bare and bare_limit is not None and seconds > bare_limit:
            shown = format_number(seconds)
            raise OptionError(
                f"{shown} as a bare number is {shown} seconds, implausible for a {what}",
                f"write {shown}ms for milliseconds, or {shown}s if seconds are meant",
            )
        if seconds <= 0:
            raise OptionError(f"duration must be greater than zero, got {value!r}", _DURATION_HINT)
        return seconds

    return parse


def _seconds(value: int | float | str) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer too large for a float
        return math.inf


duration = duration_parser()
latency_duration = duration_parser(LATENCY_BARE_LIMIT, "latency threshold")


def format_number(value: float) -> str:
    """A number in plain decimals, never exponent notation: 3000000, 0.0000001, 2.5."""
    if is_number(value, whole=True):
        return str(value)
    text_value = format(decimal.Decimal(repr(float(value))), "f")
    if "." in text_value:
        text_value = text_value.rstrip("0").rstrip(".")
    return "0" if text_value == "-0" else text_value


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if not is_number(value, whole=True):
            raise OptionError(
                f"expected a whole number, got {type_name(value)} {value!r}",
                "write digits only, without quotes",
            )
        _check_range(value, minimum, maximum)
        return value

    return parse


def number(minimum: float | None = None, maximum: float | None = None) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if not is_number(value):
            raise OptionError(
                f"expected a number, got {type_name(value)} {value!r}",
                "write a number such as 30 or 7.5, without quotes",
            )
        _check_range(value, minimum, maximum)
        return float(value)

    return parse


def _check_range(value: float, minimum: float | None, maximum: float | None) -> None:
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        low = "" if minimum is None else f"at least {minimum}"
        high = "" if maximum is None else f"at most {maximum}"
        raise OptionError(f"{value} is out of range", " and ".join(p for p in (low, high) if p))


def port(value: Any) -> int:
    if not is_number(value, whole=True) or not 1 <= value <= 65535:
        raise OptionError(f"{value!r} is not a TCP/UDP port", "use a whole number from 1 to 65535")
    return value


def text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise OptionError(
            f"expected non-empty text, got {type_name(value)} {value!r}",
            "write a word or a quoted string",
        )
    return value


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise OptionError(
            f"expected true or false, got {type_name(value)} {value!r}", "write true or false"
        )
    return value


def choice(*choices: str, why: str = "") -> Callable[[Any], str]:
    """One of `choices` (lower-case), written in any case. With `why` (what the choice decides)
    the message lists the choices and the hint says why; else the hint lists them."""
    listed = ", ".join(choices)
    among, hint = (listed, why) if why else ("the choices", "use one of: " + listed)

    def parse(value: Any) -> str:
        if not isinstance(value, str) or value.lower() not in choices:
            raise OptionError(f"{value!r} is not one of {among}", hint)
        return value.lower()

    return parse


def each(parse_one: Callable[[Any], T]) -> Callable[[Any], tuple[T, ...]]:
    """A list of values, each parsed by `parse_one`; a single value is a list of one."""

    def parse(value: Any) -> tuple[T, ...]:
        items = value if isinstance(value, list) else [value]
        if not items:
            raise OptionError("the list is empty", "give at least one value or leave the key out")
        return tuple(parse_one(item) for item in items)

    return parse


def host(value: Any) -> str:
    """A host name or an IP address literal."""
    name = text(value).strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    labels = name.removesuffix(".").split(".")  # one final dot: a fully qualified name
    if len(name) > 253 or not all(
        re.fullmatch(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?", label) for label in labels
    ):
        raise OptionError(
            f"{name!r} is not a host name or IP address",
            "use a name like gw1.example.net or an address like 192.0.2.10",
        )
    return name


def host_port(value: Any, default_port: int | None = None) -> tuple[str, int]:
    """`HOST:PORT`, `[IPv6]:PORT`, or `HOST` alone when a default port exists."""
    raw = text(value).strip()
    match = re.fullmatch(r"\[([^\]]+)\](?::(.*))?|([^:]+)(?::(.*))?", raw)
    if match is None:
        raise OptionError(
            f"{raw!r} is not HOST:PORT", "write host:port, or [address]:port for IPv6"
        )
    name = match.group(1) or match.group(3)
    port_text = match.group(2) if match.group(1) else match.group(4)
    if port_text is None:
        if default_port is None:
            raise OptionError(f"{raw!r} has no port", "write host:port, e.g. 192.0.2.10:443")
        return host(name), default_port
    # ASCII digits, few: str.isdigit() takes '²' and '٨٠', and int() refuses 4,300 digits.
    if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
        raise OptionError(f"{port_text!r} is not a port number", "use a number from 1 to 65535")
    return host(name), port(int(port_text))


_base_dir: contextvars.ContextVar[Path] = contextvars.ContextVar("base_dir", default=Path("."))


@contextlib.contextmanager
def relative_to(folder: Path) -> Iterator[None]:
    """Resolve relative paths parsed inside this block against `folder` (the inventory's)."""
    token = _base_dir.set(folder)
    try:
        yield
    finally:
        _base_dir.reset(token)


def path(value: Any) -> str:
    """A file path; relative paths start at the inventory file's folder."""
    return str(_base_dir.get() / Path(text(value)).expanduser())


def readable_file(value: Any) -> str:
    resolved = path(value)
    if not os.access(resolved, os.R_OK) or not Path(resolved).is_file():
        raise OptionError(
            f"file {resolved} does not exist or is not readable",
            "check the path; relative paths start at the inventory's folder",
        )
    return resolved


def ip_port(value: Any, default_port: int, hint: str) -> tuple[str, int]:
    """`ADDRESS[:PORT]` where the address must be an IP literal: for peers commwatch must reach
    exactly as named (a DNS server, an SNMP agent), never through a resolver."""
    address, port_number = host_port(value, default_port=default_port)
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise OptionError(f"{address!r} is not an IP address", hint) from None
    return address, port_number


def format_host_port(name: str, port_number: int) -> str:
    return f"[{name}]:{port_number}" if ":" in name else f"{name}:{port_number}"


def type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "a mapping",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)
