"""Inventory loading: inheritance, and every rejection with its exact place and message."""

from __future__ import annotations

import textwrap

import pytest

from monitor.inventory import InventoryErrors, load_inventory

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


def test_the_shipped_inventory_is_valid_and_stays_on_loopback():
    import ipaddress

    from tests.conftest import REPO

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
        (("kind: tcp", "kind: icmp"), "8:19: unknown check kind 'icmp' (use one of: "),
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
            "(allowed: defaults, id, links, min_up, name, tags)",
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
    ],
)
def test_rejections_name_the_place_and_the_fix(tmp_path, edit, expected):
    old, new = edit
    assert old in CHECK
    errors = errors_of(tmp_path, CHECK.replace(old, new, 1))
    assert len(errors) == 1, errors
    assert errors[0].startswith(expected)


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
            " interval, kind, latency_crit, latency_warn, retries, retry_interval, tags, target,"
            " timeout)",
        ),
    ],
)
def test_credential_faults_are_placed(tmp_path, credential_env, edit, expected):
    text = CREDENTIALS.replace(*edit)
    assert errors_of(tmp_path, text)[0] == expected
