"""The inventory's `cluster:` section: what it holds, secrets by reference only, and every fault
placed at its line."""

from __future__ import annotations

import pytest

from monitor.config.cluster import (
    DEFAULT_LEASE_TTL,
    DEFAULT_SPOOL_AGE,
    DEFAULT_SPOOL_BYTES,
    DEFAULT_STREAM,
    DEFAULT_URL,
    NatsCredentials,
    byte_size,
)
from monitor.core.options import OptionError
from tests.test_api_config import faults, load

PASSWORD = "nats-password-s3cr3t-value"


@pytest.fixture
def secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("CW_NATS_PASSWORD", PASSWORD)
    (tmp_path / "nats.token").write_text(PASSWORD + "\n")
    (tmp_path / "agent.creds").write_text("-----BEGIN NATS USER JWT-----\n")
    (tmp_path / "ca.pem").write_text("not read at load time\n")


def test_no_cluster_section_is_one_machine(tmp_path):
    assert load(tmp_path, "").cluster is None


def test_an_empty_section_has_the_defaults(tmp_path):
    cluster = load(tmp_path, "cluster: {}\n").cluster
    assert cluster is not None
    assert cluster.nats.url == DEFAULT_URL and cluster.nats.credentials is None
    assert cluster.stream == DEFAULT_STREAM == "COMMWATCH_RESULTS"
    assert cluster.spool.path is None
    assert (cluster.spool.max_age, cluster.spool.max_bytes) == (
        DEFAULT_SPOOL_AGE,
        DEFAULT_SPOOL_BYTES,
    )
    assert cluster.lease_ttl == DEFAULT_LEASE_TTL == 10.0
    assert cluster.domain is None  # the JetStream of the server connected to
    assert cluster.leaf_domains == () and cluster.leaf_domain is None


def test_the_section_loads_with_secrets_by_reference(tmp_path, secrets):
    cluster = load(
        tmp_path,
        """\
        cluster:
          nats:
            url: tls://127.0.0.1:4333
            credentials: {user: agent-north, password_env: CW_NATS_PASSWORD}
            tls: {ca_file: ca.pem}
          stream: RESULTS_TEST
          domain: hub-1
          leaf_domains: [psap-north, psap_south]
          spool: {path: spool.sqlite3, max_age: 2h, max_bytes: 5MiB}
          lease_ttl: 2500ms
        """,
    ).cluster
    assert cluster is not None
    assert cluster.nats.url == "tls://127.0.0.1:4333"
    credentials = cluster.nats.credentials
    assert credentials is not None and credentials.user == "agent-north"
    assert credentials.password is not None and credentials.password.reveal() == PASSWORD
    assert cluster.nats.tls is not None and cluster.nats.tls.ca_file == tmp_path / "ca.pem"
    assert cluster.nats.tls.cert_file is None
    assert cluster.stream == "RESULTS_TEST"
    assert cluster.domain == "hub-1"
    assert cluster.leaf_domains == ("psap-north", "psap_south")
    assert cluster.spool.path == tmp_path / "spool.sqlite3"  # relative to the inventory
    assert (cluster.spool.max_age, cluster.spool.max_bytes) == (7200.0, 5 * 1024 * 1024)
    assert cluster.lease_ttl == 2.5
    assert PASSWORD not in repr(cluster)


@pytest.mark.parametrize(
    ("credentials", "expected"),
    [
        ("{token_file: nats.token}", "token"),
        ("{token_env: CW_NATS_PASSWORD}", "token"),
        ("{creds_file: agent.creds}", "creds_file"),
    ],
)
def test_each_kind_of_credential(tmp_path, secrets, credentials, expected):
    cluster = load(tmp_path, f"cluster: {{nats: {{credentials: {credentials}}}}}\n").cluster
    assert cluster is not None and isinstance(cluster.nats.credentials, NatsCredentials)
    assert getattr(cluster.nats.credentials, expected) is not None


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        ("cluster: {nats: {url: 'http://127.0.0.1:4222'}}\n", "8:23: 'url': this is not a NATS"),
        (
            f"cluster: {{nats: {{url: 'nats://agent:{PASSWORD}@127.0.0.1:4222'}}}}\n",
            "8:23: 'url': the NATS URL holds credentials (not shown)",
        ),
        ("cluster: {nats: {url: 'nats://127.0.0.1:99999'}}\n", "'url': the NATS URL's port"),
        ("cluster: {nast: {}}\n", "8:11: unknown key 'nast' in cluster (did you mean 'nats'?)"),
        ("cluster: {stream: 'a.b'}\n", "8:19: 'stream': 'a.b' is not a JetStream stream name"),
        (
            "cluster: {domain: 'hub.eu'}\n",
            "8:19: 'domain': 'hub.eu' is not a JetStream domain name (use letters, digits, '-' "
            "and '_' (no '.', '*', '>' or spaces), at most 64: the domain in the hub's "
            "nats-server.conf, jetstream { domain: NAME })",
        ),
        ("cluster: {domain: ''}\n", "8:19: 'domain': expected non-empty text"),
        (
            "cluster: {leaf_domains: [north, north]}\n",
            "8:25: 'leaf_domains': a leaf domain is given twice (name each site's leaf node once)",
        ),
        ("cluster: {leaf_domains: [a.b]}\n", "8:25: 'leaf_domains': 'a.b' is not a JetStream"),
        (
            "cluster: {domain: hub, leaf_domains: [north, hub]}\n",
            "8:38: 'leaf_domains': 'hub' is the hub's own domain (cluster: domain:) (list only "
            "the domains of the sites' leaf nodes",
        ),
        (
            "cluster: {nats: {credentials: {user: a}}}\n",
            "8:31: NATS credentials need exactly one of password_env",
        ),
        (
            "cluster: {nats: {credentials: {token_env: CW_NATS_PASSWORD, "
            "creds_file: agent.creds}}}\n",
            "NATS credentials need exactly one of",
        ),
        (
            "cluster: {nats: {credentials: {password_env: CW_NATS_PASSWORD}}}\n",
            "a NATS password goes with a user",
        ),
        (
            "cluster: {nats: {credentials: {user: a, password_env: CW_UNSET_PASSWORD}}}\n",
            "'password_env': environment variable CW_UNSET_PASSWORD is not set",
        ),
        (
            f"cluster: {{nats: {{credentials: {{token_env: '{PASSWORD}'}}}}}}\n",
            "'token_env': this is not an environment variable name",
        ),
        ("cluster: {nats: {credentials: {creds_file: missing.creds}}}\n", "'creds_file': file"),
        (
            "cluster: {nats: {tls: {cert_file: ca.pem}}}\n",
            "a client certificate needs both cert_file and key_file",
        ),
        ("cluster: {spool: {max_age: forever}}\n", "'max_age': 'forever' is not a duration"),
        ("cluster: {spool: {max_bytes: 10}}\n", "'max_bytes': 10 bytes is too small"),
        ("cluster: {spool: {max_bytes: lots}}\n", "'max_bytes': 'lots' is not a size"),
        (
            "cluster: {lease_ttl: 500ms}\n",
            "8:22: 'lease_ttl': a lease TTL of 0.5s is too short to renew reliably "
            "(give at least 1s; the default is 10s)",
        ),
        ("cluster: {lease_ttl: soon}\n", "'lease_ttl': 'soon' is not a duration"),
    ],
)
def test_faults_are_placed_and_quote_no_secret(tmp_path, secrets, cluster, expected):
    found = faults(tmp_path, cluster)
    assert any(expected in fault for fault in found), found
    assert all(fault.startswith(f"{tmp_path / 'inventory.yaml'}:") for fault in found), found
    assert not any(PASSWORD in fault for fault in found), found


def test_sizes():
    assert byte_size("100MiB") == 100 * 1024**2
    assert byte_size("512 KiB") == 512 * 1024
    assert byte_size("1.5GiB") == 3 * 1024**3 // 2
    assert byte_size("2MB") == 2_000_000
    assert byte_size(65536) == 65536
    for bad in ("", "MiB", "-1MiB", "10 parsecs", True, 1.5):
        with pytest.raises(OptionError):
            byte_size(bad)


def test_the_command_line_domain_overrides_the_inventory(tmp_path, capsys):
    from monitor.cli.cluster_extra import cluster_config
    from monitor.cli.parser import build_parser

    inventory = load(tmp_path, "cluster: {domain: hub}\n")
    parser = build_parser()
    for command in (["agent", "--name", "a"], ["central"]):
        given = parser.parse_args([*command, "--js-domain", "site-north"])
        assert cluster_config(inventory, given).domain == "site-north"
        assert cluster_config(inventory, parser.parse_args(command)).domain == "hub"
        with pytest.raises(SystemExit):
            parser.parse_args([*command, "--js-domain", "a.b"])
        assert "'a.b' is not a JetStream domain name" in capsys.readouterr().err


def test_a_leaf_domain_needs_the_hubs_own(tmp_path, capsys):
    """`--leaf-domain` sends the results to the leaf node's stream, and the heartbeats across
    it to the hub's buckets: without the hub's domain, or with the same one, it is refused
    before anything runs."""
    from monitor.cli.main import main

    path = tmp_path / "inventory.yaml"
    for cluster in ("cluster: {}\n", "cluster: {domain: north}\n"):
        load(tmp_path, cluster)
        code = main(["agent", str(path), "--name", "a", "--leaf-domain", "north"])
        assert code == 3
        assert capsys.readouterr().err == (
            "commwatch agent: --leaf-domain north needs the hub's own JetStream domain, another "
            "one, in cluster: domain: or --js-domain: the heartbeats go to the hub's buckets "
            "across the leaf node\n"
        )
