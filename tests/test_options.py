"""The option parsers every inventory key and `commwatch probe` flag goes through: their bounds
exactly met, each duration unit, the types refused, secrets by reference, HTTP headers.

Parsers made by a factory (`integer(1, 65535)`, `duration_parser(30)`) are made in the tests,
not at import: mutation testing swaps a function only for calls made while a test runs.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from monitor.core.options import (
    LATENCY_BARE_LIMIT,
    OptionError,
    boolean,
    build_options,
    choice,
    duration,
    duration_parser,
    each,
    format_host_port,
    format_number,
    host,
    host_port,
    integer,
    ip_port,
    latency_duration,
    number,
    option,
    option_specs,
    path,
    port,
    readable_file,
    relative_to,
    text,
    type_name,
)
from monitor.core.secrets import MAX_SECRET_BYTES, SecretRef, headers, secret_env, secret_file
from monitor.core.text import MAX_MESSAGE_CHARS


def refused(parse, value, *args) -> OptionError:
    with pytest.raises(OptionError) as caught:
        parse(value, *args)
    assert caught.value.hint, "every refusal says how to fix it"
    return caught.value


# --- OptionError -------------------------------------------------------------------------------


def test_an_option_error_reads_as_its_message_and_hint():
    error = OptionError("5 is out of range", "at most 4", key="retries")
    assert (error.message, error.hint, error.key) == ("5 is out of range", "at most 4", "retries")
    assert str(error) == "5 is out of range (at most 4)"
    assert str(OptionError("bad")) == "bad"
    assert (OptionError("bad").hint, OptionError("bad").key) == ("", None)
    assert error.args == ("5 is out of range",)


def test_an_option_error_is_bounded_and_printable():
    error = OptionError("\x1b[31m" + "9" * 5000 + " is out of range", "x" * 5000)
    assert len(error.message) <= MAX_MESSAGE_CHARS and len(error.hint) <= MAX_MESSAGE_CHARS
    assert error.message.endswith(" is out of range")
    assert "\x1b" not in error.message and "\\x1b" in error.message
    assert "\x1b" not in str(error)


# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("2.s", 2.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("2d", 172800.0),
        ("1m30s", 90.0),
        ("1d2h3m4s5ms", 93784.005),
        (" 1m 30s ", 90.0),  # spaces are allowed around and between parts
        ("1h1h", 7200.0),
        # A bare number is seconds, as a number or as digits.
        (3, 3.0),
        (2.5, 2.5),
        ("3", 3.0),
        ("+3", 3.0),
        (" 7.5 ", 7.5),
        ("3650d", 3650 * 86400.0),  # exactly ten years
        (3650 * 86400, 3650 * 86400.0),
    ],
)
def test_durations(written, seconds):
    parse = duration_parser()
    assert parse(written) == pytest.approx(seconds)
    assert isinstance(parse(written), float)
    assert duration(written) == pytest.approx(seconds)  # the shared parser keeps the rule


@pytest.mark.parametrize(
    ("written", "message"),
    [
        (True, "expected a duration, got a boolean"),
        (None, "expected a duration, got nothing"),
        ([1], "expected a duration, got a list"),
        ({"s": 1}, "expected a duration, got a mapping"),
        ("", "'' is not a duration"),
        ("5x", "'5x' is not a duration"),
        ("1m30", "'1m30' is not a duration"),
        ("ms", "'ms' is not a duration"),
        ("1e3s", "'1e3s' is not a duration"),
        ("s30", "'s30' is not a duration"),
        ("3651d", "the duration is longer than ten years"),
        (3650 * 86400 + 1, "the duration is longer than ten years"),
        (10**400, "the duration is longer than ten years"),  # too large for a float
        (float("inf"), "expected a duration, got a number"),  # not a finite number at all
        (float("nan"), "expected a duration, got a number"),
        (0, "duration must be greater than zero, got 0"),
        ("0s", "duration must be greater than zero, got '0s'"),
        (-3, "duration must be greater than zero, got -3"),
        ("-3", "duration must be greater than zero, got '-3'"),
    ],
)
def test_durations_refused(written, message):
    error = refused(duration_parser(), written)
    assert error.message == message


@pytest.mark.parametrize(
    ("written", "seconds"),
    [(30, 30.0), ("30", 30.0), (0.5, 0.5), ("500ms", 0.5), ("31s", 31.0), ("1m", 60.0)],
)
def test_a_bare_number_up_to_the_limit_is_seconds(written, seconds):
    assert duration_parser(30.0, "latency threshold")(written) == seconds


@pytest.mark.parametrize(
    ("written", "shown"), [(31, "31"), ("500", "500"), (500.5, "500.5"), (30.001, "30.001")]
)
def test_a_bare_number_above_the_limit_suggests_the_unit(written, shown):
    error = refused(duration_parser(30.0, "latency threshold"), written)
    assert error.message == (
        f"{shown} as a bare number is {shown} seconds, implausible for a latency threshold"
    )
    assert error.hint == f"write {shown}ms for milliseconds, or {shown}s if seconds are meant"


def test_the_latency_parser_refuses_bare_numbers_above_thirty():
    assert LATENCY_BARE_LIMIT == 30.0
    assert latency_duration(30) == 30.0
    assert "implausible for a latency threshold" in refused(latency_duration, 31).message
    assert duration(31) == 31.0  # other durations have no such limit


def test_without_a_name_a_refused_bare_number_is_a_duration():
    error = refused(duration_parser(1.0), 2)
    assert error.message == "2 as a bare number is 2 seconds, implausible for a duration"


# --- numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (3000000, "3000000"),
        (3e6, "3000000"),
        (1e22, "10000000000000000000000"),
        (1e-7, "0.0000001"),
        (2.5, "2.5"),
        (2.0, "2"),
        (100.0, "100"),
        (-2.50, "-2.5"),
        (-0.0, "0"),
        (0.1 + 0.2, "0.30000000000000004"),
        (True, "1"),  # a boolean is not printed as an integer
        (-7, "-7"),
        (2**60 + 1, "1152921504606846977"),  # a whole number exactly, past a float's 53 bits
    ],
)
def test_format_number_writes_plain_decimals(value, shown):
    assert format_number(value) == shown


@pytest.mark.parametrize(
    ("parse_args", "value"),
    [((), 0), ((), -5), ((1, 65535), 1), ((1, 65535), 65535), ((1,), 10**9), ((None, 10), -99)],
)
def test_integers_within_their_bounds(parse_args, value):
    parsed = integer(*parse_args)(value)
    assert parsed == value and type(parsed) is int


@pytest.mark.parametrize(
    ("parse_args", "value", "message", "hint"),
    [
        ((1, 65535), 65536, "65536 is out of range", "at least 1 and at most 65535"),
        ((1, 65535), 0, "0 is out of range", "at least 1 and at most 65535"),
        ((1,), 0, "0 is out of range", "at least 1"),
        ((None, 10), 11, "11 is out of range", "at most 10"),
        (
            (),
            True,
            "expected a whole number, got a boolean True",
            "write digits only, without quotes",
        ),
        ((), 1.0, "expected a whole number, got a number 1.0", "write digits only, without quotes"),
        ((), "5", "expected a whole number, got text '5'", "write digits only, without quotes"),
        (
            (),
            None,
            "expected a whole number, got nothing None",
            "write digits only, without quotes",
        ),
    ],
)
def test_integers_refused(parse_args, value, message, hint):
    error = refused(integer(*parse_args), value)
    assert (error.message, error.hint) == (message, hint)


def test_numbers_within_their_bounds_are_floats():
    parse = number(0, 100)
    for value in (0, 7, 7.5, 100, 100.0):
        parsed = parse(value)
        assert parsed == value and type(parsed) is float
    assert number()(-1e9) == -1e9


@pytest.mark.parametrize(
    ("parse_args", "value", "message", "hint"),
    [
        ((0, 100), 100.5, "100.5 is out of range", "at least 0 and at most 100"),
        ((0, 100), -0.1, "-0.1 is out of range", "at least 0 and at most 100"),
        ((0.5, 1.5), 2, "2 is out of range", "at least 0.5 and at most 1.5"),
        (
            (),
            True,
            "expected a number, got a boolean True",
            "write a number such as 30 or 7.5, without quotes",
        ),
        (
            (),
            "7",
            "expected a number, got text '7'",
            "write a number such as 30 or 7.5, without quotes",
        ),
    ],
)
def test_numbers_refused(parse_args, value, message, hint):
    error = refused(number(*parse_args), value)
    assert (error.message, error.hint) == (message, hint)


@pytest.mark.parametrize("value", [1, 53, 65535])
def test_ports(value):
    assert port(value) == value


@pytest.mark.parametrize("value", [0, -1, 65536, 10**6, True, "80", 80.0, None])
def test_ports_refused(value):
    error = refused(port, value)
    assert error.message == f"{value!r} is not a TCP/UDP port"
    assert error.hint == "use a whole number from 1 to 65535"


# --- words -------------------------------------------------------------------------------------


def test_text_is_kept_as_written_but_never_empty():
    assert text(" gw ") == " gw "
    for value in ("", "   ", None, 5, ["x"]):
        error = refused(text, value)
        assert error.message.startswith("expected non-empty text, got ")
    assert refused(text, 5).message == "expected non-empty text, got a number 5"


def test_booleans_are_yaml_booleans_only():
    assert boolean(True) is True and boolean(False) is False
    for value in ("true", 1, 0, None):
        assert refused(boolean, value).message.startswith("expected true or false, got ")
    assert refused(boolean, "yes").message == "expected true or false, got text 'yes'"


def test_choices_ignore_case_and_list_the_choices_when_refused():
    parse = choice("warn", "ignore")
    assert parse("WARN") == "warn" and parse("ignore") == "ignore"
    for value in ("crit", 5, None, "war"):
        error = refused(parse, value)
        assert error.message == f"{value!r} is not one of the choices"
        assert error.hint == "use one of: warn, ignore"


def test_choices_with_a_reason_list_the_choices_in_the_message_and_the_reason_as_hint():
    parse = choice("warn", "ignore", why="what an expired certificate does")
    error = refused(parse, "crit")
    assert error.message == "'crit' is not one of warn, ignore"
    assert error.hint == "what an expired certificate does"


def test_each_parses_a_list_or_a_single_value_into_a_tuple():
    parse = each(port)
    assert parse([80, 443]) == (80, 443)
    assert parse(8080) == (8080,)
    assert refused(parse, (80,)).message == "(80,) is not a TCP/UDP port"  # not a YAML list
    error = refused(parse, [])
    assert error.message == "the list is empty"
    assert refused(parse, [80, 0]).message == "0 is not a TCP/UDP port"


@pytest.mark.parametrize(
    "type_and_name",
    [
        (True, "a boolean"),
        (3, "a number"),
        (2.5, "a number"),
        ("x", "text"),
        ([], "a list"),
        ({}, "a mapping"),
        (None, "nothing"),
        (b"x", "bytes"),
        ((1,), "tuple"),
    ],
)
def test_type_names_say_what_yaml_gave(type_and_name):
    value, name = type_and_name
    assert type_name(value) == name


# --- hosts and addresses -----------------------------------------------------------------------

LABEL_63 = "a" * 63


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("gw1.example.net", "gw1.example.net"),
        ("GW1.Example.NET", "GW1.Example.NET"),
        ("gw1.example.net.", "gw1.example.net."),  # a fully qualified name
        ("edge-X", "edge-X"),  # only a final dot is stripped before the labels are read
        ("edge-X.", "edge-X."),
        (" gw ", "gw"),
        ("a", "a"),
        ("a_b-c", "a_b-c"),
        (f"{LABEL_63}.net", f"{LABEL_63}.net"),
        (".".join(["a" * 49] * 5) + ".abc", ".".join(["a" * 49] * 5) + ".abc"),  # 253
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("0:0:0:0:0:0:0:1", "::1"),  # an address is written the one way
    ],
)
def test_hosts(written, expected):
    assert host(written) == expected


@pytest.mark.parametrize(
    "written",
    [
        "-gw",
        "gw-",
        "a_",
        "a..b",
        "gw..",  # an empty last label, however it ends
        "gw.example..",
        "gw/1",
        "gw 1",
        "gw:80",
        f"{LABEL_63}a.net",  # a 64-character label
        ".".join(["a" * 49] * 5) + ".abcd",  # 254 characters
        "[gw]x",
        "[gw",  # brackets come in pairs
        "gw]",
    ],
)
def test_hosts_refused(written):
    error = refused(host, written)
    assert error.message.endswith("is not a host name or IP address")
    assert "192.0.2.10" in error.hint


@pytest.mark.parametrize(
    ("written", "default", "expected"),
    [
        ("gw:443", None, ("gw", 443)),
        (" gw:443 ", None, ("gw", 443)),
        ("127.0.0.1:1", None, ("127.0.0.1", 1)),
        ("[::1]:53", None, ("::1", 53)),
        ("gw:65535", None, ("gw", 65535)),
        ("gw:00080", None, ("gw", 80)),
        ("gw", 161, ("gw", 161)),
        ("[::1]", 53, ("::1", 53)),
        ("gw:99", 161, ("gw", 99)),  # a written port beats the default
    ],
)
def test_host_ports(written, default, expected):
    assert host_port(written, default_port=default) == expected


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("gw", "'gw' has no port"),
        ("[::1]", "'[::1]' has no port"),
        ("gw:", "'' is not a port number"),
        ("[::1]:", "'' is not a port number"),
        ("gw:123456", "'123456' is not a port number"),
        ("gw:٨٠", "'٨٠' is not a port number"),  # digits, but not ASCII ones
        ("gw:²", "'²' is not a port number"),
        ("gw:+80", "'+80' is not a port number"),
        ("gw:80:90", "'80:90' is not a port number"),
        ("::1:53", "'::1:53' is not HOST:PORT"),
        ("gw:0", "0 is not a TCP/UDP port"),
        ("gw:65536", "65536 is not a TCP/UDP port"),
        ("bad name:80", "'bad name' is not a host name or IP address"),
    ],
)
def test_host_ports_refused(written, message):
    assert refused(host_port, written).message == message


def test_ip_ports_take_addresses_only():
    hint = "name the DNS server by its address"
    assert ip_port("127.0.0.1", 53, hint) == ("127.0.0.1", 53)
    assert ip_port("127.0.0.1:5353", 53, hint) == ("127.0.0.1", 5353)
    assert ip_port("[::1]:5353", 53, hint) == ("::1", 5353)
    error = refused(ip_port, "dns.example", 53, hint)
    assert (error.message, error.hint) == ("'dns.example' is not an IP address", hint)


def test_format_host_port_brackets_ipv6_only():
    assert format_host_port("::1", 53) == "[::1]:53"
    assert format_host_port("gw", 80) == "gw:80"
    assert format_host_port("127.0.0.1", 161) == "127.0.0.1:161"


# --- paths -------------------------------------------------------------------------------------


def test_relative_paths_start_at_the_inventorys_folder(tmp_path):
    assert path("ca.pem") == "ca.pem"
    with relative_to(tmp_path):
        assert path("ca.pem") == str(tmp_path / "ca.pem")
        assert path("/etc/ssl/ca.pem") == "/etc/ssl/ca.pem"
        assert path("~/ca.pem") == str(Path.home() / "ca.pem")
        with relative_to(tmp_path / "inner"):
            assert path("x") == str(tmp_path / "inner" / "x")
        assert path("x") == str(tmp_path / "x")
    assert path("x") == "x"
    with pytest.raises(RuntimeError), relative_to(tmp_path):
        raise RuntimeError
    assert path("x") == "x"  # restored after an error too
    assert refused(path, "").message.startswith("expected non-empty text")


def test_readable_files(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    with relative_to(tmp_path):
        assert readable_file("ca.pem") == str(tmp_path / "ca.pem")
        for missing in ("gone.pem", "."):  # absent, or a folder
            error = refused(readable_file, missing)
            assert error.message == (f"file {tmp_path / missing} does not exist or is not readable")


# --- secrets -----------------------------------------------------------------------------------


def test_a_secret_reference_shows_where_never_what():
    ref = SecretRef("env", "SNMP_COMMUNITY")
    assert repr(ref) == str(ref) == "<secret env:SNMP_COMMUNITY>"
    assert str(SecretRef("file", "/etc/token")) == "<secret file:/etc/token>"


def test_an_environment_secret(monkeypatch):
    monkeypatch.setenv("COMMWATCH_PIN_SECRET", "pr1vate")
    ref = secret_env("COMMWATCH_PIN_SECRET")
    assert ref == SecretRef("env", "COMMWATCH_PIN_SECRET")
    ref.check_available()
    assert ref.reveal() == "pr1vate"
    assert ref.reveal_bytes() == b"pr1vate"
    monkeypatch.delenv("COMMWATCH_PIN_SECRET")
    for use in (ref.reveal, ref.reveal_bytes, ref.check_available):
        error = refused(lambda _, use=use: use(), None)
        assert error.message == "environment variable COMMWATCH_PIN_SECRET is not set"
        assert "export it" in error.hint


def test_an_environment_secret_that_is_not_utf8(monkeypatch):
    monkeypatch.setitem(os.environb, b"COMMWATCH_PIN_SECRET", b"\xffpr1vate")
    ref = SecretRef("env", "COMMWATCH_PIN_SECRET")
    assert ref.reveal_bytes() == b"\xffpr1vate"  # the bytes as stored: an octet string
    error = refused(lambda _: ref.reveal(), None)
    assert error.message == "environment variable COMMWATCH_PIN_SECRET is not UTF-8 text"
    assert "pr1vate" not in str(error) and "xff" not in str(error)


def test_a_file_secret(tmp_path):
    (tmp_path / "token").write_bytes(b"  s3cr3t\n")
    with relative_to(tmp_path):
        ref = secret_file("token")
    assert ref == SecretRef("file", str(tmp_path / "token"))
    ref.check_available()
    assert ref.reveal() == "s3cr3t"  # surrounding whitespace (the newline) is not the secret
    (tmp_path / "token").write_bytes(b"\xfes3cr3t")
    error = refused(lambda _: ref.reveal(), None)
    assert error.message == f"secret file {tmp_path / 'token'} is not UTF-8 text"
    assert "s3cr3t" not in str(error)


def test_a_file_secret_that_cannot_be_had(tmp_path):
    gone = SecretRef("file", str(tmp_path / "gone"))
    error = refused(lambda _: gone.reveal_bytes(), None)
    assert (
        error.message == f"cannot read secret file {tmp_path / 'gone'}: No such file or directory"
    )
    error = refused(lambda _: gone.check_available(), None)
    assert error.message == f"secret file {tmp_path / 'gone'} does not exist or is not readable"
    huge = tmp_path / "huge"
    huge.write_bytes(b"x" * (MAX_SECRET_BYTES + 1))
    for not_a_secret in (str(tmp_path), str(huge), "/dev/zero"):
        error = refused(
            lambda _, name=not_a_secret: SecretRef("file", name).check_available(), None
        )
        assert error.message == (
            f"secret file {not_a_secret} is not a regular file of at most {MAX_SECRET_BYTES} bytes"
        )
    assert (
        "cannot read secret file"
        in refused(lambda _: SecretRef("file", str(huge)).reveal(), None).message
    )
    just_fits = tmp_path / "fits"
    just_fits.write_bytes(b"y" * MAX_SECRET_BYTES)
    SecretRef("file", str(just_fits)).check_available()
    assert SecretRef("file", str(just_fits)).reveal() == "y" * MAX_SECRET_BYTES


@pytest.mark.parametrize("name", ["SNMP_COMMUNITY", "_x1", "a"])
def test_environment_variable_names(name):
    assert secret_env(name) == SecretRef("env", name)


@pytest.mark.parametrize("written", ["1X", "my secret", "a-b", "p@ss", "x\n"])
def test_a_value_in_place_of_a_variable_name_is_refused_unshown(written):
    error = refused(secret_env, written)
    assert written.strip() not in str(error)
    assert error.message.startswith("this is not an environment variable name")


# --- headers -----------------------------------------------------------------------------------


def test_headers_as_a_mapping():
    assert headers({"Accept": "application/json", "X-N": 5, "X-F": 2.5}) == (
        ("Accept", "application/json"),
        ("X-N", "5"),
        ("X-F", "2.5"),
    )


def test_headers_as_lines():
    assert headers("X-Token: abc") == (("X-Token", "abc"),)
    assert headers([" X-A :  v ", "B: two: three", "Empty:"]) == (
        ("X-A", "v"),
        ("B", "two: three"),  # the first colon separates name and value
        ("Empty", ""),
    )


def test_header_secrets_by_reference(tmp_path):
    with relative_to(tmp_path):
        assert headers(["Authorization: {env: TOKEN}", "X-Key: {file: key}"]) == (
            ("Authorization", SecretRef("env", "TOKEN")),
            ("X-Key", SecretRef("file", str(tmp_path / "key"))),
        )
        assert headers({"A": {"env": "TOKEN"}, "B": {"file": "key"}}) == (
            ("A", SecretRef("env", "TOKEN")),
            ("B", SecretRef("file", str(tmp_path / "key"))),
        )


@pytest.mark.parametrize(
    "literal",
    [
        '{"a": 1}',  # JSON is text
        "{env: A, file: b}",  # two keys: not a reference
        "{other: A}",
        "{env: A",
        "env: A}",  # a YAML mapping, but not in braces
        "{}",
        "{[env]: A}",
    ],
)
def test_a_header_line_that_is_no_reference_is_its_text(literal):
    assert headers(f"X: {literal}") == (("X", literal),)


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ({"X": {"env": "T", "file": "f"}}, "header X must be text or {env: NAME} / {file: PATH}"),
        ({"X": {"other": "T"}}, "header X must be text or {env: NAME} / {file: PATH}"),
        ({"X": {}}, "header X must be text or {env: NAME} / {file: PATH}"),
        ({"X": True}, "header X has a boolean as its value"),
        ({"X": None}, "header X has nothing as its value"),
        ({"X": [1]}, "header X has a list as its value"),
        ({"Bad Name": "x"}, "'Bad Name' is not a valid header name"),
        ({5: "x"}, "5 is not a valid header name"),
        ({"": "x"}, "'' is not a valid header name"),
        ("NoColon", "'NoColon' is not a header line"),
        (["A: 1", "NoColon"], "'NoColon' is not a header line"),
        (5, "expected a mapping of header names to values, got a number"),
        ({"X": {"env": "1bad"}}, None),  # the reference itself is checked
    ],
)
def test_headers_refused(written, message):
    error = refused(headers, written)
    if message is not None:
        assert error.message == message
    else:
        assert error.message.startswith("this is not an environment variable name")


# --- declaring options -------------------------------------------------------------------------


def test_option_declares_a_field_the_loader_and_the_cli_read():
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Base:
        ca_file: str | None = option(None, parse=text, help="CA bundle", metavar="FILE")

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Options(Base):
        target: tuple[str, int] = option(parse=host_port, help="HOST:PORT", metavar="HOST:PORT")
        interval: float = option("15m", parse=duration_parser(), help="how often")
        ports: tuple[int, ...] = option((), parse=each(port), help="ports", repeatable=True)
        retries: int = option(3, parse=integer(1), help="attempts")
        internal: int = 0  # not an option: no parser

    specs = option_specs(Options)
    assert [s.name for s in specs] == ["target", "ca_file", "interval", "ports", "retries"]
    target, ca_file, interval, ports, retries = specs
    assert (target.required, target.default, target.written) == (True, None, None)
    assert (target.help, target.metavar, target.parse) == ("HOST:PORT", "HOST:PORT", host_port)
    assert (ca_file.required, ca_file.default, ca_file.metavar) == (False, None, "FILE")
    # A default written as text is parsed once, and help shows it as written.
    assert (interval.default, interval.written, interval.metavar) == (900.0, "15m", "VALUE")
    assert Options(target=("gw", 1)).interval == 900.0
    assert (ports.repeatable, ports.default, interval.repeatable) == (True, (), False)
    assert (retries.default, retries.written, retries.required) == (3, None, False)


def test_a_mutable_default_is_refused():
    for mutable in ([], {}, set()):
        with pytest.raises(TypeError, match="use a tuple or None"):
            option(mutable, parse=each(text), help="x", repeatable=True)


def test_build_options_runs_validate():
    @dataclasses.dataclass(frozen=True)
    class Checked:
        low: int
        high: int

        def validate(self) -> None:
            if self.low >= self.high:
                raise OptionError("low must be below high", "swap them", key="low")

    @dataclasses.dataclass(frozen=True)
    class Plain:
        value: int

    assert build_options(Checked, {"low": 1, "high": 2}) == Checked(1, 2)
    with pytest.raises(OptionError) as caught:
        build_options(Checked, {"low": 2, "high": 1})
    assert caught.value.key == "low"
    assert build_options(Plain, {"value": 5}) == Plain(5)
