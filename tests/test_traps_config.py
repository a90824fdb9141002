"""The inventory's `traps:` section and the `--traps` flag: what they hold, every fault placed
at its line with how to fix it, and no secret in any message."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from monitor.config.api import Listen
from monitor.config.inventory import InventoryErrors
from monitor.config.loader import load_inventory
from monitor.config.traps import DEFAULT_LISTEN, engine_id
from monitor.core.options import OptionError
from monitor.core.secrets import SecretRef
from tests.conftest import REPO

COMMUNITY = "cw-config-trap-community-1d9c"
PASSPHRASE = "cw-config-trap-passphrase-e0f3"
BASE = """\
version: 1
sites:
  - id: s
    links:
      - id: l
        checks:
          - {id: c, kind: tcp, target: 127.0.0.1:9}
"""


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CW_TRAP_COMMUNITY", COMMUNITY)
    monkeypatch.setenv("CW_TRAP_AUTH", PASSPHRASE)
    (tmp_path / "priv.secret").write_text(PASSPHRASE + "\n")


def load(tmp_path: Path, traps: str):
    path = tmp_path / "inventory.yaml"
    path.write_text(BASE + textwrap.dedent(traps))
    return load_inventory(path)


def faults(tmp_path: Path, traps: str) -> list[str]:
    with pytest.raises(InventoryErrors) as caught:
        load(tmp_path, traps)
    return [str(e) for e in caught.value.errors]


def test_no_section_listens_for_nothing(tmp_path: Path) -> None:
    assert load(tmp_path, "").traps is None


def test_the_section_loads_on_loopback_at_an_unprivileged_port(tmp_path: Path) -> None:
    traps = load(tmp_path, "traps: {communities: [{community_env: CW_TRAP_COMMUNITY}]}\n").traps
    assert traps is not None
    assert traps.listen == DEFAULT_LISTEN == Listen("127.0.0.1", 1162)
    assert traps.communities == (SecretRef("env", "CW_TRAP_COMMUNITY"),)
    assert (traps.users, traps.local_engine_id) == ((), None)
    assert (traps.per_source_rate, traps.total_rate) == (50.0, 1000.0)


def test_users_by_reference_with_the_engines_they_sign_for(tmp_path: Path) -> None:
    traps = load(
        tmp_path,
        """\
        traps:
          listen: "[::1]:2162"
          local_engine_id: "80:00:1f:88:04:63:77"
          per_source_rate: 5
          total_rate: 500
          users:
            - user: noc
              auth_protocol: SHA256
              auth_passphrase_env: CW_TRAP_AUTH
              priv_protocol: aes256
              priv_passphrase_file: priv.secret
              engine_id: ["0x80001f8803aabbccddeeff", "8000000001020304"]
            - {user: lab, auth_protocol: md5, auth_passphrase_env: CW_TRAP_AUTH}
            - {user: open}
        """,
    ).traps
    assert traps is not None
    assert traps.listen == Listen("::1", 2162)
    assert traps.local_engine_id == bytes.fromhex("80001f88046377")
    assert (traps.per_source_rate, traps.total_rate) == (5.0, 500.0)
    noc, lab, open_user = traps.users
    assert (noc.user, noc.auth_protocol, noc.priv_protocol, noc.level) == (
        "noc",
        "sha256",
        "aes256",
        "authPriv",
    )
    assert noc.auth_passphrase == SecretRef("env", "CW_TRAP_AUTH")
    assert noc.priv_passphrase == SecretRef("file", str(tmp_path / "priv.secret"))
    assert noc.engine_ids == (
        bytes.fromhex("80001f8803aabbccddeeff"),
        bytes.fromhex("8000000001020304"),
    )
    assert (lab.level, lab.engine_ids) == ("authNoPriv", ())
    assert open_user.level == "noAuthNoPriv"
    assert PASSPHRASE not in repr(traps) and COMMUNITY not in repr(traps)


@pytest.mark.parametrize(
    ("traps", "expected"),
    [
        (
            "traps: {}\n",
            "inventory.yaml:8:8: traps: accepts nothing without communities or users (add"
            " communities: [{community_env: NAME}] for v1/v2c, or users: for SNMPv3)",
        ),
        (
            "traps: {listen: 127.0.0.1, communities: [{community_env: CW_TRAP_COMMUNITY}]}\n",
            "inventory.yaml:8:17: 'listen': '127.0.0.1' has no port",
        ),
        (
            "traps: {listen: 'trapd.local:162', communities: [{community_env: X}]}\n",
            "inventory.yaml:8:17: 'listen': 'trapd.local'",
        ),
        (
            "traps: {communities: [{community_env: CW_TRAP_COMMUNITY, community_file: x}]}\n",
            "inventory.yaml:8:23: a community needs exactly one of community_env and"
            " community_file (secrets are given by reference only",
        ),
        (
            "traps: {communities: [{community: public}]}\n",
            "inventory.yaml:8:24: unknown key 'community' in a traps community",
        ),
        (
            "traps: {communities: [{community_env: CW_UNSET_COMMUNITY}]}\n",
            "inventory.yaml:8:39: 'community_env': environment variable CW_UNSET_COMMUNITY is"
            " not set",
        ),
        (
            f"traps: {{communities: [{{community_env: '{COMMUNITY}'}}]}}\n",
            "inventory.yaml:8:39: 'community_env': this is not an environment variable name",
        ),
        (
            "traps: {users: [{auth_protocol: sha, auth_passphrase_env: CW_TRAP_AUTH}]}\n",
            "inventory.yaml:8:17: a traps user has no 'user'",
        ),
        (
            "traps: {users: [{user: u, auth_protocol: sha}]}\n",
            "inventory.yaml:8:17: auth_protocol and auth_passphrase go together",
        ),
        (
            "traps: {users: [{user: u, priv_protocol: aes, priv_passphrase_env: CW_TRAP_AUTH}]}\n",
            "inventory.yaml:8:17: SNMPv3 privacy needs authentication (add auth_protocol)",
        ),
        (
            "traps: {users: [{user: u, auth_protocol: sha1024, auth_passphrase_env: X}]}\n",
            "inventory.yaml:8:42: 'auth_protocol': 'sha1024' is not one of the choices",
        ),
        (
            "traps: {users: [{user: u, engine_id: 0x80001f8803aabbccdd}]}\n",
            "inventory.yaml:8:38: 'engine_id': expected an engine id in quotes, got a number"
            " (write the engine id in hex and in quotes",
        ),
        (
            "traps: {users: [{user: u, engine_id: '0x8000'}]}\n",
            "inventory.yaml:8:38: 'engine_id': '0x8000' is not an engine id of 5 to 32 octets",
        ),
        (
            "traps: {users: [{user: u, engine_id: '0x8000000001'},"
            " {user: u, engine_id: ['0x8000000002', '0x8000000001']}]}\n",
            "inventory.yaml:8:55: user 'u' is already listed for engine id 8000000001 at line 8"
            " (list each user once per engine id)",
        ),
        (
            "traps: {communities: [{community_env: CW_TRAP_COMMUNITY}], per_source_rate: 0}\n",
            "inventory.yaml:8:77: 'per_source_rate': 0 is out of range",
        ),
        (
            "traps: {comunities: []}\n",
            "inventory.yaml:8:9: unknown key 'comunities' in traps (did you mean 'communities'?)",
        ),
    ],
)
def test_faults_are_placed(tmp_path: Path, traps: str, expected: str) -> None:
    found = faults(tmp_path, traps)
    assert any(expected in fault for fault in found), found
    assert not any(COMMUNITY in fault or PASSPHRASE in fault for fault in found)


def test_engine_ids() -> None:
    assert engine_id("0x80001F8803AABB") == bytes.fromhex("80001f8803aabb")
    assert engine_id("80:00:1f:88:03") == bytes.fromhex("80001f8803")
    for bad in ("0x80001f88", "80001f8803a", "0x" + "00" * 33, "not hex at all"):
        with pytest.raises(OptionError):
            engine_id(bad)


def commwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def test_the_traps_flag_needs_the_section_and_a_continuous_run(tmp_path: Path) -> None:
    (tmp_path / "inventory.yaml").write_text(BASE)
    inventory = str(tmp_path / "inventory.yaml")
    done = commwatch("run", "--traps", "127.0.0.1:0", inventory)
    assert done.returncode == 3 and done.stdout == ""
    assert done.stderr.startswith(
        "commwatch run: --traps listens for the senders the inventory's traps: section accepts,"
    )
    done = commwatch("tui", "--traps", "127.0.0.1:0", inventory)
    assert done.returncode == 3 and "commwatch tui: --traps listens for" in done.stderr
    done = commwatch("run", "--once", "--traps", "127.0.0.1:0", inventory)
    assert (done.returncode, done.stderr) == (
        3,
        "commwatch run: --traps is for a continuous run: drop --once\n",
    )
    done = commwatch("run", "--traps", "localhost:162", inventory)
    assert done.returncode == 3 and "argument --traps" in done.stderr
    assert "--traps HOST:PORT" in commwatch("run", "--help").stdout
    assert "--traps HOST:PORT" in commwatch("tui", "--help").stdout
