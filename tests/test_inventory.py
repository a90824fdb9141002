"""Inventory loading: inheritance, and every rejection with its exact place and message."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from monitor.config.inventory import InventoryErrors
from monitor.config.loader import load_inventory
from monitor.core import yamlcompose, yamlnodes
from monitor.core.options import OptionError
from monitor.core.secrets import secret_file
from tests.conftest import REPO
from tests.peers.tcp_peers import closed_port

GOOD = """\
version: 1
defaults:
  interval: 2m
  timeout: 5s
  latency_warn: 300ms
concurrency:
  global: 50
  per_host: 2
sites:
  - id: psap-north
    name: North PSAP
    tags: [psap]
    defaults:
      interval: 30s
    links:
      - id: fibre
        role: primary
        medium: fibre
        tags: [fibre]
        defaults:
          latency_crit: 1s
        checks:
          - id: router
            kind: tcp
            target: 127.0.0.1:22
            tags: [ssh]
          - id: router-fast
            kind: tcp
            target: 127.0.0.1:23
            interval: 10s
            latency_warn: 100ms
      - id: lte
        role: backup
        checks:
          - id: modem
            kind: tcp
            target: "[::1]:80"
"""


def write(tmp_path, text: str):
    path = tmp_path / "inventory.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(tmp_path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(InventoryErrors) as caught:
        load_inventory(path)
    prefix = f"{path}:"
    lines = [str(e) for e in caught.value.errors]
    assert all(line.startswith(prefix) for line in lines)
    return [line[len(prefix) :] for line in lines]


def test_a_good_inventory_loads_with_inherited_defaults(tmp_path):
    inventory = load_inventory(write(tmp_path, GOOD))
    assert [s.id for s in inventory.sites] == ["psap-north"]
    assert [(link.id, link.role) for link in inventory.links] == [
        ("fibre", "primary"),
        ("lte", "backup"),
    ]
    router, fast, modem = inventory.checks
    assert router.ref.check_id == "psap-north/fibre/router"
    assert router.ref.tags == ("psap", "fibre", "ssh")
    assert (router.interval, router.timeout, router.retries) == (30.0, 5.0, 3)
    assert (router.options.latency_warn, router.options.latency_crit) == (0.3, 1.0)
    assert (fast.interval, fast.options.latency_warn) == (10.0, 0.1)
    assert (modem.options.latency_warn, modem.options.latency_crit) == (0.3, None)
    assert modem.ref.host == "::1"
    assert inventory.concurrency.global_limit == 50
    assert inventory.concurrency.per_host == 2
    assert router.location.line == 23


def test_the_shipped_inventory_is_valid_and_stays_on_loopback(monkeypatch):
    import ipaddress

    from monitor.lab.lab import SNMP_ENV
    from tests.conftest import REPO

    for name in (SNMP_ENV.community, SNMP_ENV.auth_passphrase, SNMP_ENV.priv_passphrase):
        monkeypatch.setenv(name, "made-up")  # its SNMP checks name the demo lab's secrets
    inventory = load_inventory(REPO / "inventory.yaml")
    assert {link.role for link in inventory.links} >= {"primary", "backup"}
    assert len(inventory.sites) >= 3
    for check in inventory.checks:
        assert ipaddress.ip_address(check.ref.host).is_loopback, check.ref.check_id


CHECK = """\
version: 1
sites:
  - id: s
    links:
      - id: l
        checks:
          - id: c
            kind: tcp
            target: 127.0.0.1:22
"""


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("target: 127.0.0.1:22", "target: 127.0.0.1:70000"),
            "9:21: 'target': 70000 is not a TCP/UDP port (use a whole number from 1 to 65535)",
        ),
        (
            ("target: 127.0.0.1:22", "target: 127.0.0.1:22\n            timout: 5s"),
            "10:13: unknown key 'timout' in a check (did you mean 'timeout'?)",
        ),
        (
            ("target: 127.0.0.1:22", "target: 127.0.0.1:22\n            interval: 5 minutes"),
            "10:23: 'interval': '5 minutes' is not a duration "
            "(write a duration such as 250ms, 30s, 5m, 1h or 1m30s)",
        ),
        (
            ("target: 127.0.0.1:22", "target: 127.0.0.1:22\n            retries: many"),
            "10:22: 'retries': expected a whole number, got text 'many' "
            "(write digits only, without quotes)",
        ),
        (
            ("target: 127.0.0.1:22", "target: 127.0.0.1:22\n            timeout: 0s"),
            "10:22: 'timeout': duration must be greater than zero, got '0s' "
            "(write a duration such as 250ms, 30s, 5m, 1h or 1m30s)",
        ),
        (
            ("target: 127.0.0.1:22", "target: 127.0.0.1:22\n            timeout: 2m"),
            "10:22: 'timeout': timeout 120s is longer than interval 60s "
            "(a check must finish before it is due again: shorten timeout or lengthen interval)",
        ),
        (("kind: tcp", "kind: ping"), "8:19: unknown check kind 'ping' (use one of: "),
        (("            kind: tcp\n", ""), "7:13: a check has no 'kind' (add 'kind:' with one of: "),
        (
            ("            target: 127.0.0.1:22\n", ""),
            "7:13: 'target': 'target' is required for tcp checks (HOST:PORT to connect to)",
        ),
        (
            ("id: c", "id: Core Router"),
            "7:17: check id 'Core Router' is not valid (ids are lower-case letters, digits, "
            "'-' and '_', starting with a letter or digit)",
        ),
        (
            ("      - id: l\n", "      - id: l\n        role: spare\n"),
            "6:15: 'role': 'spare' is not one of primary, secondary, backup "
            "(the role tells redundancy analysis how this link counts)",
        ),
        (
            ("version: 1", "version: 2"),
            "1:10: inventory version 2 is not supported (this commwatch reads version 1)",
        ),
        (
            ("version: 1", "version: 1\nsites: []"),
            "3:1: key 'sites' appears twice in this mapping (the first is at line 2; keep one)",
        ),
        (
            (
                "target: 127.0.0.1:22",
                "target: 127.0.0.1:22\n            latency_warn: 2s\n            latency_crit: 1s",
            ),
            "10:27: 'latency_warn': latency_warn is above latency_crit "
            "(the warning must trigger first: make latency_warn <= latency_crit)",
        ),
        (
            ("    links:", "    colour: red\n    links:"),
            "4:5: unknown key 'colour' in a site "
            "(allowed: defaults, id, links, min_up, name, quorum, risks, tags, vantage)",
        ),
        (
            ("target: 127.0.0.1:22", "target: [127.0.0.1, 22]"),
            "9:21: 'target': expected non-empty text, got a list ['127.0.0.1', 22] "
            "(write a word or a quoted string)",
        ),
        (
            ("        checks:\n", "        checks:\n          - just a string\n"),
            "7:13: a check must be a mapping with id, kind and target "
            "(write '- id: ...' then 'kind:' and 'target:' under it)",
        ),
        (
            ("  - id: s", "  - id: s\n    links: {}\n"),
            "6:5: key 'links' appears twice in this mapping (the first is at line 4; keep one)",
        ),
        (
            ("target: 127.0.0.1:22", "target: '127.0.0.1:22"),
            "10:1: YAML syntax error: found unexpected end of stream "
            "(check indentation, colons and quotes around this point)",
        ),
        # Everything YAML can express is read with a place, or refused with one.
        (
            ("target: 127.0.0.1:22", "target: !!python/object:os.system 127.0.0.1:22"),
            "9:21: the YAML tag !!python/object:os.system is not supported (commwatch reads "
            "plain values (text, numbers, true/false, lists, mappings): remove the tag)",
        ),
        (
            ("target: 127.0.0.1:22", "target: !!binary aGVsbG8="),
            "9:21: the YAML tag !!binary is not supported",
        ),
        (
            ("      - id: l\n", "      - id: l\n        tags: !!set {a: null}\n"),
            "6:15: the YAML tag !!set is not supported",
        ),
        (
            ("target: 127.0.0.1:22", 'target: 127.0.0.1:22\n            retries: !!int "x"'),
            "10:22: 'x' is not a !!int value",
        ),
        (
            ("target: 127.0.0.1:22", "target: 127.0.0.1:22\n            retries: !custom 3"),
            "10:22: the YAML tag !custom is not supported",
        ),
        (
            ("target: 127.0.0.1:22", "target: 127.0.0.1:22\n            retries: " + "9" * 100_000),
            "10:22: a number of 100,000 characters is too long "
            "(numbers here have at most 64 characters)",
        ),
        (
            ("target: 127.0.0.1:22", "target: 127.0.0.1:22\n            retries: " + "9" * 5000),
            "10:22: a number of 5,000 characters is too long",
        ),
        (
            ("target: 127.0.0.1:22", "target: 127.0.0.1:22\n            description: 2026-02-30"),
            "10:26: '2026-02-30' cannot be read as !!timestamp: day is out of range for month",
        ),
        (
            ("target: 127.0.0.1:22", "target: '" + "x" * 10_000 + "'"),
            "9:21: a value of 10,000 characters is longer than the 8,192 allowed "
            "(keep long data in a file the inventory names)",
        ),
        (
            ("target: 127.0.0.1:22", "target: *nope"),
            "9:21: alias *nope refers to no anchor "
            "(define &nope on a value before this line, or fix the name)",
        ),
        (
            ("target: 127.0.0.1:22", "target: &a [*a]"),
            "9:25: alias *a is used inside its own anchor &a (a value cannot contain itself)",
        ),
        (
            ("target: 127.0.0.1:22", "target: &a 127.0.0.1:22\n            description: &a x"),
            "10:26: anchor &a is defined a second time "
            "(the first is at line 9; give each anchor its own name)",
        ),
        (
            ("target: 127.0.0.1:22", "target: 127.0.0.1:22\n---\nversion: 1"),
            "10:1: a second YAML document starts here",
        ),
        (
            ("target: 127.0.0.1:22", "target: 127.0.0.1:22\n            ? [a]\n            : b"),
            "10:15: a key must be a single value, not a list or mapping",
        ),
        (
            ("target: 127.0.0.1:22", "target: 127.0.0.1:22\n            <<: 5"),
            "10:17: '<<' merges mappings only",
        ),
        (
            ("target: 127.0.0.1:22", "target: " + "[" * 100 + "]" * 100),
            "9:78: lists and mappings nest deeper than 64 levels here",
        ),
        (
            ("  - id: s", "  - id: s\x1b[2J"),
            "3:10: the character '\\x1b' is not allowed in YAML",
        ),
        (
            ("version: 1", "version: true"),
            "1:10: inventory version True is not supported",
        ),
        (
            ("target: 127.0.0.1:22", 'target: "127.0.0.1:\u00b2"'),
            "9:21: 'target': '²' is not a port number (use a number from 1 to 65535)",
        ),
        (
            ("target: 127.0.0.1:22", 'target: "127.0.0.1:\u0668\u0660"'),
            "9:21: 'target': '٨٠' is not a port number",
        ),
        (
            ("target: 127.0.0.1:22", "target: 127.0.0.1:" + "9" * 4400),
            "9:21: 'target': '9999",
        ),
        (
            ("target: 127.0.0.1:22", "target: 127.0.0.1:22\n            interval: .nan"),
            "10:23: '.nan' is not a finite number (write a number such as 30 or 7.5)",
        ),
        (
            ("target: 127.0.0.1:22", "target: 127.0.0.1:22\n            latency_warn: -.inf"),
            "10:27: '-.inf' is not a finite number",
        ),
        (
            ("target: 127.0.0.1:22", "target: 127.0.0.1:22\n            timeout: 1.0e+999"),
            "10:22: '1.0e+999' is not a finite number",
        ),
    ],
)
def test_rejections_name_the_place_and_the_fix(tmp_path, edit, expected):
    old, new = edit
    assert old in CHECK
    errors = errors_of(tmp_path, CHECK.replace(old, new, 1))
    assert len(errors) == 1, errors
    assert errors[0].startswith(expected), errors[0]


def test_duplicate_ids_are_rejected_in_each_scope(tmp_path):
    errors = errors_of(
        tmp_path,
        """\
        sites:
          - id: s
            links:
              - id: l
                checks:
                  - {id: c, kind: tcp, target: "127.0.0.1:1"}
                  - {id: c, kind: tcp, target: "127.0.0.1:2"}
              - id: l
                checks:
                  - {id: c, kind: tcp, target: "127.0.0.1:3"}
          - id: s
            links: []
        """,
    )
    assert errors == [
        "7:18: duplicate check id 'c' (already used at line 6; ids must be unique)",
        "8:13: duplicate link id 'l' (already used at line 4; ids must be unique)",
        "11:9: duplicate site id 's' (already used at line 2; ids must be unique)",
    ]


def test_the_same_check_id_in_different_links_is_fine(tmp_path):
    inventory = load_inventory(
        write(
            tmp_path,
            """\
        sites:
          - id: s
            links:
              - id: a
                checks: [{id: router, kind: tcp, target: "127.0.0.1:1"}]
              - id: b
                checks: [{id: router, kind: tcp, target: "127.0.0.1:2"}]
        """,
        )
    )
    assert [c.ref.check_id for c in inventory.checks] == ["s/a/router", "s/b/router"]


def test_all_independent_faults_are_reported_together_in_file_order(tmp_path):
    errors = errors_of(
        tmp_path,
        """\
        defaults:
          intervl: 1m
        sites:
          - id: s
            links:
              - id: l
                checks:
                  - {id: a, kind: tcp, target: "127.0.0.1:99999"}
                  - {id: b, kind: tcp, target: "127.0.0.1:1", timeout: soon}
        """,
    )
    assert [e.split(": ")[0] for e in errors] == ["2:3", "8:40", "9:64"]


def test_defaults_are_parsed_by_the_kind_that_uses_them(tmp_path):
    errors = errors_of(
        tmp_path,
        """\
        defaults:
          latency_warn: fast
        sites:
          - id: s
            links:
              - id: l
                checks: [{id: a, kind: tcp, target: "127.0.0.1:1"}]
        """,
    )
    assert errors == [
        "2:17: 'latency_warn': 'fast' is not a duration "
        "(write a duration such as 250ms, 30s, 5m, 1h or 1m30s)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "1:1: the inventory is empty (start from the example inventory.yaml)"),
        ("- a\n- b\n", "1:1: the inventory must be a mapping of keys to values"),
        ("version: 1\n", "1:1: the inventory has no 'sites' (add a 'sites:' line to it)"),
        ("sites: []\n", "1:8: the inventory has no sites"),
        ("sites: {a: 1}\n", "1:8: sites must be a list"),
    ],
)
def test_empty_or_wrongly_shaped_files(tmp_path, text, expected):
    errors = errors_of(tmp_path, text)
    assert errors[0].startswith(expected)


def test_an_unreadable_file_is_an_error_not_a_traceback(tmp_path):
    with pytest.raises(InventoryErrors) as caught:
        load_inventory(tmp_path / "missing.yaml")
    assert str(caught.value).endswith(
        "missing.yaml:1:1: cannot read the inventory: No such file or directory (check the path)"
    )
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InventoryErrors) as caught:
        load_inventory(binary)
    assert "not UTF-8" in str(caught.value)


def test_unreachable_references_are_rejected_at_load(tmp_path, monkeypatch):
    monkeypatch.delenv("COMMWATCH_TEST_UNSET", raising=False)
    errors = errors_of(
        tmp_path,
        """\
        sites:
          - id: s
            links:
              - id: l
                checks:
                  - id: api
                    kind: http
                    target: https://127.0.0.1:8443/
                    headers: {Authorization: {env: COMMWATCH_TEST_UNSET}}
                  - id: api2
                    kind: http
                    target: https://127.0.0.1:8443/
                    ca_file: certs/missing-ca.pem
                    headers: {X-Token: {file: secrets/token}}
        """,
    )
    assert errors == [
        "9:22: 'headers': environment variable COMMWATCH_TEST_UNSET is not set "
        "(export it before starting commwatch, or use a *_file key)",
        f"13:22: 'ca_file': file {tmp_path}/certs/missing-ca.pem does not exist or is not "
        "readable (check the path; relative paths start at the inventory's folder)",
        f"14:22: 'headers': secret file {tmp_path}/secrets/token does not exist or is not "
        "readable (check the path; relative paths start at the inventory's folder)",
    ]


def test_secret_references_resolve_relative_to_the_inventory_and_never_print(tmp_path, monkeypatch):
    (tmp_path / "token").write_text("s3cr3t-value\n")
    monkeypatch.setenv("COMMWATCH_TEST_TOKEN", "another-s3cr3t")
    inventory = load_inventory(
        write(
            tmp_path,
            """\
        sites:
          - id: s
            links:
              - id: l
                checks:
                  - id: api
                    kind: http
                    target: https://127.0.0.1:8443/
                    headers:
                      X-Token: {file: token}
                      Authorization: {env: COMMWATCH_TEST_TOKEN}
        """,
        )
    )
    (check,) = inventory.checks
    file_ref, env_ref = (value for _, value in check.options.headers)
    assert file_ref.reveal() == "s3cr3t-value"
    assert env_ref.reveal() == "another-s3cr3t"
    shown = repr(inventory) + str(check.options)
    assert "s3cr3t" not in shown
    assert f"<secret file:{tmp_path}/token>" in shown


RESILIENT = """\
version: 1
flapping: {window: 15, high: 40, low: 20}
groups:
  - id: backhaul-north
    links: [ridge/microwave, valley/fibre]
    min_up: 1
maintenance:
  - id: ridge-tuesday
    applies_to: [ridge]
    timezone: America/Chicago
    days: [tue]
    at: "02:00"
    duration: 2h
  - id: valley-swap
    applies_to: [valley/fibre/router]
    start: 2026-12-01T01:00
    end: 2026-12-01T03:00
sites:
  - id: ridge
    min_up: 1
    links:
      - id: microwave
        checks: [{id: router, kind: tcp, target: "127.0.0.1:1"}]
      - id: console
        depends_on: [ridge/microwave]
        availability_from: [rfss]
        checks:
          - {id: rfss, kind: tcp, target: "127.0.0.1:2"}
          - {id: web, kind: tcp, target: "127.0.0.1:3", depends_on: [ridge/microwave/router]}
  - id: valley
    links:
      - id: fibre
        checks: [{id: router, kind: tcp, target: "127.0.0.1:4", retry_interval: 5s}]
"""


def test_resilience_sections_load(tmp_path):
    inventory = load_inventory(write(tmp_path, RESILIENT))
    resilience = inventory.resilience
    groups = {g.id: g for g in resilience.groups}
    assert groups["ridge"].link_ids == ("ridge/microwave", "ridge/console")
    assert groups["backhaul-north"].site_id == ""
    assert groups["backhaul-north"].link_ids == ("ridge/microwave", "valley/fibre")
    assert (resilience.flapping.window, resilience.flapping.high) == (15, 40.0)
    console = inventory.sites[0].links[1]
    assert console.depends_on == ("ridge/microwave",)
    assert console.availability_from == ("ridge/console/rfss",)
    web = console.checks[1]
    assert web.depends_on == ("ridge/microwave/router",)
    router = inventory.sites[1].links[0].checks[0]
    assert (router.retry_interval, inventory.checks[0].retry_interval) == (5.0, 30.0)
    weekly, one_off = resilience.maintenance
    tuesday_3am_chicago = 1796720400.0  # 2026-12-08T03:00-06:00, a Tuesday
    assert weekly.covers(tuesday_3am_chicago)
    assert not weekly.covers(tuesday_3am_chicago + 3600)
    assert one_off.covers(one_off.start) and not one_off.covers(one_off.end)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("depends_on: [ridge/microwave]", "depends_on: [ridge/microwav]"),
            "25:21: ridge/console refers to unknown 'ridge/microwav' "
            "(did you mean 'ridge/microwave'?)",
        ),
        (
            ("    links: [ridge/microwave, valley/fibre]", "    links: [ridge/microwave, hill/x]"),
            "5:12: group backhaul-north refers to unknown 'hill/x'",
        ),
        (
            (
                'checks: [{id: router, kind: tcp, target: "127.0.0.1:1"}]',
                "depends_on: [ridge/console/web]\n"
                '        checks: [{id: router, kind: tcp, target: "127.0.0.1:1"}]',
            ),
            "23:21: dependency cycle: ridge/microwave -> ridge/console/web -> ridge/console"
            " -> ridge/microwave",
        ),
        (
            ("  - id: ridge\n    min_up: 1", "  - id: ridge\n    min_up: 3"),
            "20:13: min_up 3 is more than the 2 links there are",
        ),
        (("  - id: backhaul-north", "  - id: ridge"), "4:9: duplicate group (or site) id 'ridge'"),
        (
            ("    duration: 2h\n", ""),
            "8:5: a maintenance window needs either start and end, or days, at and duration",
        ),
        (
            ("timezone: America/Chicago", "timezone: Mars/Olympus"),
            "10:15: 'timezone': 'Mars/Olympus' is not a known time zone",
        ),
        (
            ("    end: 2026-12-01T03:00", "    end: 2026-11-30T03:00"),
            "17:10: the window ends before it starts",
        ),
        (
            ("{window: 15, high: 40, low: 20}", "{window: 15, high: 40, low: 60}"),
            "2:11: flapping low 60% is not below high 40%",
        ),
        (
            # A share of changes is never below 0%: a check that began to flap never would stop.
            ("{window: 15, high: 40, low: 20}", "{window: 15, high: 40, low: 0}"),
            "2:39: 'low': flapping low 0% can never be reached",
        ),
        (
            ("availability_from: [rfss]", "availability_from: [rfs]"),
            "26:28: availability_from names 'rfs', which is not a check of this link",
        ),
        (
            ("retry_interval: 5s", "retry_interval: 5m"),
            "33:81: 'retry_interval': retry_interval 300s is longer than interval 60s",
        ),
    ],
)
def test_resilience_rejections(tmp_path, edit, expected):
    old, new = edit
    assert old in RESILIENT
    errors = errors_of(tmp_path, RESILIENT.replace(old, new, 1))
    # One fault each; the cycle case closes two cycles (via the check's own link, and via
    # the check's explicit dependency), and each is reported.
    assert len(errors) == (2 if "cycle" in expected else 1), errors
    assert errors[0].startswith(expected), errors[0]


# --- named credentials ----------------------------------------------------------------------

CREDENTIALS = """\
version: 1
credentials:
  core-v3:
    version: 3
    user: monitor
    auth_protocol: sha256
    auth_passphrase_env: CW_INV_AUTH
    priv_protocol: aes
    priv_passphrase_file: priv.txt
  legacy:
    version: 2c
    community_env: CW_INV_COMMUNITY
sites:
  - id: s
    defaults:
      credentials: core-v3
    links:
      - id: l
        checks:
          - id: router
            kind: snmp
            target: 127.0.0.1
          - id: switch
            kind: snmp
            target: 127.0.0.2:1161
            credentials: legacy
          - id: other-user
            kind: snmp
            target: 127.0.0.3
            user: operator
          - id: ssh
            kind: tcp
            target: 127.0.0.1:22
"""


@pytest.fixture
def credential_env(tmp_path, monkeypatch):
    monkeypatch.setenv("CW_INV_AUTH", "auth-passphrase-for-tests")
    monkeypatch.setenv("CW_INV_COMMUNITY", "community-for-tests")
    (tmp_path / "priv.txt").write_text("priv-passphrase-for-tests\n")


def test_named_credentials_fill_in_snmp_keys(tmp_path, credential_env):
    router, switch, other, ssh = load_inventory(write(tmp_path, CREDENTIALS)).checks

    assert (router.options.version, router.options.user) == ("3", "monitor")
    assert repr(router.options.auth_passphrase_env) == "<secret env:CW_INV_AUTH>"
    assert router.options.priv_passphrase_file.name == str(tmp_path / "priv.txt")
    assert (switch.options.version, switch.options.user) == ("2c", None)
    assert repr(switch.options.community_env) == "<secret env:CW_INV_COMMUNITY>"
    # A check's own key wins over its credentials.
    assert (other.options.user, other.options.priv_protocol) == ("operator", "aes")
    assert ssh.kind == "tcp"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("credentials: legacy", "credentials: legasy"),
            "26:26: unknown credentials 'legasy' (defined: core-v3, legacy)",
        ),
        (
            ("    user: monitor", "    usr: monitor"),
            "5:5: unknown key 'usr' in credentials core-v3 (did you mean 'user'?)",
        ),
        (
            ("    auth_protocol: sha256", "    auth_protocol: sha3"),
            "6:20: 'auth_protocol': 'sha3' is not one of the choices "
            "(use one of: md5, sha, sha224, sha256, sha384, sha512)",
        ),
        (
            ("CW_INV_COMMUNITY", "CW_INV_UNSET"),
            "12:20: 'community_env': environment variable CW_INV_UNSET is not set "
            "(export it before starting commwatch, or use a *_file key)",
        ),
        (
            ("    priv_protocol: aes\n", ""),
            "15:20: 'priv_protocol': priv_protocol and priv_passphrase go together "
            "(set both priv_protocol and priv_passphrase_env (or _file))",
        ),
        (
            (
                "            target: 127.0.0.1:22",
                "            target: 127.0.0.1:22\n            credentials: legacy",
            ),
            "34:13: unknown key 'credentials' in a check (allowed: depends_on, description, id,"
            " interval, kind, latency_crit, latency_warn, quorum, retries, retry_interval, tags,"
            " target, timeout, vantage)",
        ),
    ],
)
def test_credential_faults_are_placed(tmp_path, credential_env, edit, expected):
    text = CREDENTIALS.replace(*edit)
    assert errors_of(tmp_path, text)[0] == expected


# --- everything YAML can express: read with a place, or refused with one --------------------


def test_repeated_keys_are_refused_in_nested_mappings_too(tmp_path):
    errors = errors_of(
        tmp_path,
        CHECK.replace(
            "kind: tcp\n            target: 127.0.0.1:22",
            "kind: http\n            target: http://127.0.0.1:1/\n"
            "            headers: {X-A: one, X-B: two, X-A: three}",
        ),
    )
    assert errors == [
        "10:43: key 'X-A' appears twice in this mapping (the first is at line 10; keep one)"
    ]


def test_a_billion_laughs_stops_at_the_alias_that_crosses_the_limit(tmp_path):
    lines = ["version: 1", 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 8)}]" for i in range(1, 9)]
    lines.append("sites: *a8")
    started = time.perf_counter()
    errors = errors_of(tmp_path, "\n".join(lines) + "\n")
    assert time.perf_counter() - started < 5
    assert errors == [
        "8:20: the document grows past 1,000,000 values here (aliases repeat what their anchor "
        "holds: share defaults with them, do not multiply lists)"
    ]


def test_a_document_too_large_without_aliases_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(yamlcompose, "MAX_NODES", 50)
    errors = errors_of(tmp_path, "version: 1\nx-many: [" + ", ".join(["1"] * 60) + "]\n")
    assert errors == ["2:145: the document grows past 50 values here (split the inventory)"]


def test_aliases_cannot_nest_deeper_than_the_limit(tmp_path):
    lines = ["version: 1", "a0: &a0 [[[[[[[[[[1]]]]]]]]]]"]
    lines += [f"a{i}: &a{i} [[[[[[[[[[*a{i - 1}]]]]]]]]]]" for i in range(1, 8)]
    errors = errors_of(tmp_path, "\n".join(lines) + "\nsites: []\n")
    assert errors == [
        "8:19: lists and mappings nest deeper than 64 levels here (an inventory needs a handful "
        "of levels: check the indentation and brackets)"
    ]


SHARED = """\
version: 1
x-tcp: &tcp
  kind: tcp
  interval: 30s
  retries: 2
x-slow: &slow {timeout: 20s, interval: 1m}
sites:
  - id: s
    links:
      - id: l
        checks:
          - <<: *tcp
            id: plain
            target: 127.0.0.1:1
          - <<: [*slow, *tcp]
            id: slow
            target: 127.0.0.1:2
            retries: 5
          - id: inline
            <<: {kind: tcp, retries: 1}
            target: &addr 127.0.0.1:3
          - {id: again, kind: tcp, target: *addr}
"""


def test_anchors_aliases_and_merge_keys_share_values(tmp_path):
    plain, slow, inline, again = load_inventory(write(tmp_path, SHARED)).checks
    assert (plain.kind, plain.interval, plain.retries) == ("tcp", 30.0, 2)
    # The mapping's own keys win, then the merged mappings in the order listed.
    assert (slow.interval, slow.timeout, slow.retries) == (60.0, 20.0, 5)
    assert (inline.kind, inline.retries) == ("tcp", 1)
    assert again.ref.target == inline.ref.target == "127.0.0.1:3"


def test_a_fault_reached_through_an_alias_is_placed_where_it_is_used(tmp_path):
    text = SHARED.replace("  interval: 30s", "  interval: 30 seconds\n  body_regex: up")
    errors = errors_of(tmp_path, text)
    assert errors == [
        "13:17: 'interval': '30 seconds' is not a duration (write a duration such as 250ms, "
        "30s, 5m, 1h or 1m30s; written at line 4, used here through *tcp)",
        "13:17: unknown key 'body_regex' in a check (allowed: depends_on, description, id, "
        "interval, kind, latency_crit, latency_warn, quorum, retries, retry_interval, tags, "
        "target, timeout, vantage; written at line 5, used here through *tcp)",
        "16:25: unknown key 'body_regex' in a check (allowed: depends_on, description, id, "
        "interval, kind, latency_crit, latency_warn, quorum, retries, retry_interval, tags, "
        "target, timeout, vantage; written at line 5, used here through *tcp)",
    ]


def test_errors_are_printable_and_bounded(tmp_path):
    text = CHECK.replace(
        "target: 127.0.0.1:22",
        'target: ["' + "x" * 8000 + '"]\n            "\\e]0;owned\\a": 1',
    )
    errors = errors_of(tmp_path, text)
    assert len(errors) == 2
    assert all("\x1b" not in e and "\x07" not in e and len(e) < 700 for e in errors)
    assert errors[0].startswith("9:21: 'target': expected non-empty text, got a list ['xxx")
    assert " … " in errors[0]
    assert errors[1].startswith("10:13: unknown key '\\x1b]0;owned\\x07' in a check")


def test_the_number_of_errors_listed_is_bounded(tmp_path):
    checks = "".join(
        f"          - {{id: c{i}, kind: tcp, target: '127.0.0.1:0'}}\n" for i in range(150)
    )
    text = "sites:\n  - id: s\n    links:\n      - id: l\n        checks:\n" + checks
    errors = errors_of(tmp_path, text)
    assert len(errors) == 101
    assert errors[99].startswith("105:42: 'target': 0 is not a TCP/UDP port")
    assert (
        errors[100]
        == "106:43: more problems from here on are not listed (fix the ones above first)"
    )


# --- files that are not inventories ----------------------------------------------------------


def test_files_that_cannot_be_inventories_are_refused_at_once(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# padding\n" * (900 * 1024))
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"version: 1\nsites:\n  - id: caf\xe9\n")
    expected = {
        tmp_path: "1:1: cannot read the inventory: Is a directory "
        "(give the path of the inventory file, not of a folder)",
        Path("/dev/zero"): "1:1: cannot read the inventory: not a regular file "
        "(give the path of the inventory file, not of a device or socket)",
        # A named pipe nobody writes to reads as empty, at once.
        fifo: "1:1: the inventory is empty (start from the example inventory.yaml)",
        big: "1:1: the inventory is larger than 8 MiB (split it, or check that this is the "
        "right file)",
        latin: "3:12: the inventory is not UTF-8 text (save it as UTF-8)",
    }
    for path, message in expected.items():
        with pytest.raises(InventoryErrors) as caught:
            load_inventory(path)
        assert [str(e) for e in caught.value.errors] == [f"{path}:{message}"]


def test_an_inventory_can_come_from_a_pipe(tmp_path):
    done = subprocess.run(
        f"{sys.executable} -m monitor.cli check <(cat {write(tmp_path, GOOD)})",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "valid" in done.stdout


# --- one fault, one error: no echoes ---------------------------------------------------------


def test_faults_do_not_echo_through_references(tmp_path):
    errors = errors_of(
        tmp_path,
        """\
        groups:
          - id: backbone
            links: [Bad Site/fibre, good/fibre, good/nowhere]
        sites:
          - id: Bad Site
            links:
              - id: fibre
                checks:
                  - {id: router, kind: tcp, target: "127.0.0.1:99999"}
          - id: good
            min_up: 2
            links:
              - id: fibre
                depends_on: [Bad Site/fibre]
                availability_from: [router, broken]
                checks:
                  - {id: router, kind: tcp, target: "127.0.0.1:1"}
                  - {id: broken, kind: tcp, target: "127.0.0.1:0"}
              - id: Lte
                checks:
                  - id: modem
                    kind: tcp
                    target: "127.0.0.1:2"
                    depends_on: [good/fibre/broken, good/fibre/gone]
        """,
    )
    assert errors == [
        # Found although other faults exist: references are always checked.
        "3:12: group backbone refers to unknown 'good/nowhere' (did you mean 'good/fibre'?)",
        "5:9: site id 'Bad Site' is not valid (ids are lower-case letters, digits, '-' and '_', "
        "starting with a letter or digit)",
        # The links of a site whose id is at fault are still read.
        "9:45: 'target': 99999 is not a TCP/UDP port (use a whole number from 1 to 65535)",
        "18:45: 'target': 0 is not a TCP/UDP port (use a whole number from 1 to 65535)",
        "19:13: link id 'Lte' is not valid (ids are lower-case letters, digits, '-' and '_', "
        "starting with a letter or digit)",
        # Not an echo of the broken check: gone never existed.
        "24:25: good/Lte/modem refers to unknown 'good/fibre/gone' "
        "(did you mean 'good/fibre/router'?)",
    ]


def test_broken_sections_do_not_echo_at_their_users(tmp_path):
    errors = errors_of(
        tmp_path,
        """\
        credentials:
          Bad Name: {version: 2c, community_env: HOME}
        sites:
          - id: s
            links:
              - id: l
                checks:
                  - {id: a, kind: snmp, target: 127.0.0.1, credentials: Bad Name}
                  - {id: b, kind: snmp, target: 127.0.0.1, credentials: nowhere}
              - id: m
                availability_from: [x]
                checks: just text
        groups:
          - {id: g, links: [s/m, s/q]}
        """,
    )
    assert errors == [
        "2:3: credentials name 'Bad Name' is not valid (ids are lower-case letters, digits, "
        "'-' and '_', starting with a letter or digit)",
        "9:65: unknown credentials 'nowhere' (define it under a top-level 'credentials:')",
        "12:17: checks of link m must be a list (write each entry on a line starting '- ')",
        "14:20: group g refers to unknown 's/q' (did you mean 's/m'?)",
    ]
    errors = errors_of(tmp_path, "sites: {a: 1}\ngroups:\n  - {id: g, links: [s/l]}\n")
    assert errors == ["1:8: sites must be a list (write each entry on a line starting '- ')"]


def test_a_group_named_like_a_site_points_at_the_site(tmp_path):
    errors = errors_of(tmp_path, RESILIENT.replace("  - id: backhaul-north", "  - id: valley"))
    assert errors == [
        "4:9: duplicate group (or site) id 'valley' (already used at line 30; ids must be unique)"
    ]


# --- secrets and patterns from the inventory -------------------------------------------------


def test_secret_files_are_regular_and_small(tmp_path):
    (tmp_path / "huge").write_bytes(b"x" * (64 * 1024 + 1))
    text = CHECK.replace(
        "kind: tcp\n            target: 127.0.0.1:22",
        "kind: snmp\n            target: 127.0.0.1\n            version: 2c\n"
        "            community_file: /dev/zero",
    )
    assert errors_of(tmp_path, text) == [
        "11:29: 'community_file': secret file /dev/zero is not a regular file of at most 65536 "
        "bytes (name the file holding just the secret)"
    ]
    assert errors_of(tmp_path, text.replace("/dev/zero", "huge"))[0].startswith(
        f"11:29: 'community_file': secret file {tmp_path}/huge is not a regular file"
    )


def test_a_secret_file_that_grew_is_read_within_the_bound(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("t0ken\n")
    ref = secret_file(str(secret))
    ref.check_available()
    assert ref.reveal() == "t0ken"
    secret.write_bytes(b"y" * (1 << 20))
    with pytest.raises(OptionError, match="larger than 65536 bytes"):
        ref.reveal()
    secret.write_bytes(b"\xffs3cret")
    with pytest.raises(OptionError) as caught:
        ref.reveal()
    assert caught.value.message == f"secret file {secret} is not UTF-8 text"


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (
            r"'(up)\1'",
            "10:25: 'body_regex': '(up)\\\\1' is not a regular expression commwatch can match: "
            "invalid escape sequence: \\1 (RE2 syntax: no lookahead/lookbehind",
        ),
        ("'(?<=link )up'", "10:25: 'body_regex': '(?<=link )up' is not a regular expression"),
        (
            "'a{100000}'",
            "10:25: 'body_regex': 'a{100000}' is not a regular expression commwatch can match: "
            "invalid repetition size: {100000} (RE2 repeats at most 1000 times",
        ),
        (
            "'a[ab]{200}c'",
            "10:25: 'body_regex': 'a[ab]{200}c' compiles to 206 steps: matching it against "
            "1048576 bytes could take more than a second "
            "(simplify it, or set max_body_bytes to at most 651542)",
        ),
    ],
)
def test_patterns_that_cannot_be_bounded_are_refused_at_load(tmp_path, pattern, expected):
    text = CHECK.replace(
        "kind: tcp\n            target: 127.0.0.1:22",
        f"kind: http\n            target: http://127.0.0.1:1/\n            body_regex: {pattern}",
    )
    errors = errors_of(tmp_path, text)
    assert len(errors) == 1, errors
    assert errors[0].startswith(expected), errors[0]


# --- the real command -----------------------------------------------------------------------

LOCATED = re.compile(r"^.+:\d+:\d+: \S")


@pytest.mark.parametrize(
    "text",
    [
        CHECK.replace("target: 127.0.0.1:22", 'target: !!int "x"'),
        CHECK.replace("target: 127.0.0.1:22", "target: !!python/name:os.system ''"),
        CHECK.replace("target: 127.0.0.1:22", "target: 127.0.0.1:22\n            <<: *none"),
        CHECK.replace("version: 1", "version: " + "1" * 100_000),
        CHECK
        + "".join(f"x-{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)).replace(
            "*a0", "lol"
        ),
    ],
    ids=["int-tag", "python-tag", "undefined-merge", "huge-integer", "laughs"],
)
def test_commwatch_check_reports_and_exits_2(tmp_path, text):
    path = write(tmp_path, text)
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "check", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    *errors, summary = done.stderr.splitlines()
    assert errors and all(LOCATED.match(line) for line in errors), done.stderr
    assert summary == f"{path}: {len(errors)} problem(s); nothing was run"
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--max-body-bytes", "2026-02-30"), ("--max-body-bytes", "9" * 5000)],
)
def test_command_line_values_are_read_with_the_inventory_bounds(flag, value):
    """Flags take inventory values through the same reader: no traceback from YAML's dates or
    Python's integer limit."""
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "probe", "http", "http://127.0.0.1:9/", flag, value],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 3
    assert done.stderr.startswith(f"commwatch probe http: {flag}: "), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("value", ["{env: 2026-02-30}", "{env: " + "9" * 5000 + "}"])
def test_a_header_reference_is_read_with_the_inventory_bounds(value):
    """Not a reference the inventory could read: the header's literal text, as any other."""
    url = f"http://127.0.0.1:{closed_port()}/"
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "probe", "http", url, "--headers", f"X: {value}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2, done.stdout + done.stderr
    assert "refused" in done.stdout


def test_an_interface_of_odd_digits_is_a_name_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("CW_INV_COMMUNITY", "community-for-tests")
    text = CHECK.replace(
        "kind: tcp\n            target: 127.0.0.1:22",
        "kind: snmp\n            target: 127.0.0.1\n            version: 2c\n"
        "            community_env: CW_INV_COMMUNITY\n"
        f"            interfaces: ['\u00b2', '{'7' * 4400}', '12']",
    )
    (check,) = load_inventory(write(tmp_path, text)).checks
    assert check.options.interfaces == ("²", "7" * 4400, 12)


def test_a_command_line_word_reads_as_the_inventory_reads_it():
    assert yamlnodes.read_value("30") == 30
    assert yamlnodes.read_value("true") is True
    assert yamlnodes.read_value("1.5") == 1.5
    assert yamlnodes.read_value("2026-02-30") == "2026-02-30"
    assert yamlnodes.read_value("9" * 5000) == "9" * 5000
    assert yamlnodes.read_value("!!python/object:os.system x") == "!!python/object:os.system x"
    assert yamlnodes.read_value("{env: TOKEN}") == {"env": "TOKEN"}
    assert yamlnodes.read_value("{env: 2026-02-30}") == "{env: 2026-02-30}"
    assert yamlnodes.read_value("[") == "["


def test_a_role_is_a_choice_like_any_other_in_any_case(tmp_path):
    # The role is read by the same choice parser as every other choice key: `Backup` is backup.
    inventory = load_inventory(write(tmp_path, GOOD.replace("role: backup", "role: Backup")))
    assert [link.role for link in inventory.links] == ["primary", "backup"]


PLACED = """\
version: 1
defaults:
  vantage: [noc]
sites:
  - id: north
    vantage: [psap-north, noc]
    links:
      - id: fibre
        quorum: 2
        checks:
          - {id: ssh, kind: tcp, target: 127.0.0.1:22}
          - {id: web, kind: tcp, target: 127.0.0.1:80, vantage: noc, quorum: 1}
      - id: lte
        defaults: {vantage: [psap-north]}
        checks:
          - {id: ssh, kind: tcp, target: 127.0.0.1:22}
  - id: south
    links:
      - id: fibre
        checks:
          - {id: ssh, kind: tcp, target: 127.0.0.1:22}
"""


def test_vantage_and_quorum_are_inherited_from_sites_links_and_defaults(tmp_path):
    inventory = load_inventory(write(tmp_path, PLACED))
    placed = {c.ref.check_id: (c.vantage, c.quorum) for c in inventory.checks}
    assert placed == {
        "north/fibre/ssh": (("psap-north", "noc"), 2),
        "north/fibre/web": (("noc",), 1),
        "north/lte/ssh": (("psap-north",), 1),
        "south/fibre/ssh": (("noc",), 1),
    }


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            (
                "defaults: {vantage: [psap-north]}",
                "defaults: {vantage: [psap-north]}\n        quorum: 2",
            ),
            "15:17: 'quorum': quorum 2 needs as many vantage points, the check has 1 (name at"
            " least that many agents or pools in 'vantage', or lower quorum)",
        ),
        (
            ("vantage: noc, quorum: 1", "vantage: [noc, noc]"),
            "12:65: 'vantage': a vantage point is named twice (name each agent or pool once)",
        ),
        (
            ("vantage: [psap-north, noc]", "vantage: [psap.north]"),
            "6:14: 'vantage': 'psap.north' is not a valid agent or pool name (use lower-case"
            " letters, digits, '-' and '_', starting with a letter or digit (it is a NATS"
            " subject token))",
        ),
        (
            ("  vantage: [noc]\nsites", "  quorum: 2\nsites"),
            "3:11: 'quorum': quorum 2 needs as many vantage points, the check has 0 (name at"
            " least that many agents or pools in 'vantage', or lower quorum)",
        ),
    ],
)
def test_placement_faults_are_placed(tmp_path, edit, expected):
    errors = errors_of(tmp_path, PLACED.replace(*edit))
    assert expected in errors
