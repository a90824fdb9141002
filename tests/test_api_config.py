"""The inventory's `api:` section: what it holds, and every fault placed at its line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from monitor.config.api import DEFAULT_PORT, Listen, TokenRole, listen_address
from monitor.config.inventory import InventoryErrors
from monitor.config.loader import load_inventory
from monitor.core.options import OptionError

VIEWER_TOKEN = "viewer-token-0123456789abcdef"
OPERATOR_TOKEN = "operator-token-0123456789abcdef"

BASE = """\
version: 1
sites:
  - id: s
    links:
      - id: l
        checks:
          - {id: c, kind: tcp, target: 127.0.0.1:9}
"""


def load(tmp_path: Path, api: str):
    path = tmp_path / "inventory.yaml"
    path.write_text(BASE + textwrap.dedent(api))
    return load_inventory(path)


def faults(tmp_path: Path, api: str) -> list[str]:
    with pytest.raises(InventoryErrors) as caught:
        load(tmp_path, api)
    return [str(e) for e in caught.value.errors]


@pytest.fixture
def tokens(tmp_path, monkeypatch):
    monkeypatch.setenv("CW_VIEWER", VIEWER_TOKEN)
    (tmp_path / "operator.token").write_text(OPERATOR_TOKEN + "\n")


def test_no_api_section_serves_nothing(tmp_path):
    assert load(tmp_path, "").api is None


def test_the_section_loads_with_tokens_by_reference(tmp_path, tokens):
    inventory = load(
        tmp_path,
        """\
        api:
          listen: '[::1]:9200'
          tokens:
            - {role: viewer, token_env: CW_VIEWER}
            - {role: operator, token_file: operator.token, name: noc-shift}
          max_body_bytes: 4096
          max_stream_clients: 8
          stream_queue: 50
        """,
    )
    api = inventory.api
    assert api is not None
    assert api.listen == Listen("::1", 9200) and str(api.listen) == "[::1]:9200"
    assert [(t.role, t.name) for t in api.tokens] == [
        (TokenRole.VIEWER, "viewer"),
        (TokenRole.OPERATOR, "noc-shift"),
    ]
    assert api.tokens[1].secret.name == str(tmp_path / "operator.token")  # relative to the file
    assert (api.max_body_bytes, api.max_stream_clients, api.stream_queue) == (4096, 8, 50)
    assert api.tls is None and api.scheme == "http"
    # Only references are kept: no token value anywhere in the loaded configuration.
    assert VIEWER_TOKEN not in repr(api) and OPERATOR_TOKEN not in repr(api)


def test_an_empty_section_listens_on_loopback_at_the_default_port(tmp_path):
    api = load(tmp_path, "api: {}\n").api
    assert api is not None and api.listen == Listen("127.0.0.1", DEFAULT_PORT)
    assert api.exposure_problem() is None


@pytest.mark.parametrize(
    ("api", "expected"),
    [
        (
            "api: {listen: 0.0.0.0:9110}\n",
            "inventory.yaml:8:15: refusing to listen on 0.0.0.0:9110, beyond loopback, "
            "without TLS and tokens",
        ),
        ("api: {listen: 'localhost:9110'}\n", "inventory.yaml:8:15: 'listen': 'localhost'"),
        ("api: {listen: 127.0.0.1}\n", "inventory.yaml:8:15: 'listen': '127.0.0.1' has no port"),
        (
            "api: {listen: 127.0.0.1:70000}\n",
            "inventory.yaml:8:15: 'listen': 70000 is not a TCP/UDP port",
        ),
        ("api: {lisen: 127.0.0.1:1}\n", "inventory.yaml:8:7: unknown key 'lisen' in api"),
        ("api: {max_body_bytes: 1}\n", "inventory.yaml:8:23: 'max_body_bytes': 1 is out of range"),
        (
            "api: {tokens: [{role: viewer}]}\n",
            "inventory.yaml:8:16: an api token needs exactly one of token_env and token_file",
        ),
        (
            "api: {tokens: [{role: root, token_env: CW_VIEWER}]}\n",
            "inventory.yaml:8:23: 'role': 'root' is not one of viewer, operator",
        ),
        (
            "api: {tokens: [{role: viewer, token_env: CW_UNSET_TOKEN}]}\n",
            "inventory.yaml:8:42: 'token_env': environment variable CW_UNSET_TOKEN is not set",
        ),
        (
            "api: {tokens: [{role: viewer, token_file: short.token}]}\n",
            "is shorter than 16 characters (make one with: openssl rand -hex 32)",
        ),
        (
            "api: {tokens: [{role: viewer, token_env: CW_VIEWER}, "
            "{role: operator, token_env: CW_VIEWER}]}\n",
            "inventory.yaml:8:54: this token is the same as the one at line 8",
        ),
        ("api: {tls: {cert_file: missing.crt}}\n", "api tls has no 'key_file'"),
        (
            "api: {tls: {cert_file: missing.crt, key_file: missing.key}}\n",
            "'cert_file': file",
        ),
    ],
)
def test_faults_are_placed(tmp_path, tokens, api, expected):
    (tmp_path / "short.token").write_text("tiny\n")
    found = faults(tmp_path, api)
    assert any(expected in fault for fault in found), found
    assert not any(VIEWER_TOKEN in fault or "tiny" in fault for fault in found)


def test_beyond_loopback_with_tls_and_tokens_or_explicitly_allowed_loads(tmp_path, tokens):
    (tmp_path / "api.crt").write_text("pem")
    (tmp_path / "api.key").write_text("pem")
    served = load(
        tmp_path,
        """\
        api:
          listen: 0.0.0.0:9110
          tls: {cert_file: api.crt, key_file: api.key}
          tokens: [{role: viewer, token_env: CW_VIEWER}]
        """,
    ).api
    assert served is not None and served.scheme == "https" and served.exposure_problem() is None
    allowed = load(tmp_path, "api: {listen: '[::]:9110', allow_insecure_remote: true}\n").api
    assert allowed is not None and allowed.exposure_problem() is None
    tls_only = load(
        tmp_path,
        "api: {listen: 0.0.0.0:1, tls: {cert_file: api.crt, key_file: api.key}, "
        "allow_insecure_remote: true}\n",
    ).api
    assert tls_only is not None and tls_only.exposure_problem() is None


def test_listen_addresses():
    assert listen_address("127.0.0.1:0") == Listen("127.0.0.1", 0)
    assert listen_address("[::1]:0") == Listen("::1", 0)
    assert listen_address(" 127.0.0.2:9110 ").is_loopback
    assert not listen_address("192.0.2.1:9110").is_loopback
    for bad in ("example.net:9110", ":9110", "[::1]", "127.0.0.1:x", "127.0.0.1:"):
        with pytest.raises(OptionError):
            listen_address(bad)
