"""Credentials and TLS to NATS against a real nats-server: a central given an NKey seed file,
TLS with the servers' CA, or mutual TLS with a client certificate connects and takes results;
a wrong key or a server it cannot trust is refused in commwatch's words, and no secret (the
seed, the client key) is ever in its output. User and password, and a token, are tested in
tests/test_central_cli.py and tests/test_cluster_agent.py; agents and centrals share the one
place that turns the inventory's references into nats-py's options
(monitor/cluster/connection.py)."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import nkeys
import pytest

from monitor.config.loader import load_inventory
from monitor.core.model import ProbeResult, Severity
from monitor.lab.pki import Issued, make_ca, make_leaf
from tests.central_support import BASE, jetstream, publish
from tests.conftest import REPO, StartCentral
from tests.peers.nats_jwt import Operator, new_key
from tests.peers.nats_peers import NatsServer, running_nats


def user_seed(folder: Path, name: str) -> tuple[Path, str]:
    """A new NKey user: the file of its seed (as `nk -gen user` writes one), its public key."""
    seed, key = new_key(nkeys.PREFIX_BYTE_USER)
    path = folder / f"{name}.nk"
    path.write_bytes(seed + b"\n")
    path.chmod(0o600)
    return path, key.public_key.decode()


def write_pem(folder: Path, name: str, issued: Issued) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    key.chmod(0o600)
    return cert, key


def inventory(tmp_path: Path, nats: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        f"cluster: {{nats: {nats}}}\n"
        f"history: {{path: {tmp_path / 'history.sqlite3'}}}\n"
        "sites:\n  - id: north\n    links:\n      - id: wan\n        checks:\n"
        "          - {id: c0, kind: tcp, target: '127.0.0.1:9'}\n"
    )
    return path


async def takes_a_result(
    process: asyncio.subprocess.Process, server: NatsServer, path: Path, **auth: Any
) -> dict[str, Any]:
    """Publish one result as an agent (connected with `auth`) and read the central's line of
    it."""
    assert process.stdout is not None
    check = load_inventory(path).checks[0]
    result = ProbeResult(check=check.ref, started_at=BASE, duration_ms=1.0, severity=Severity.OK)
    async with jetstream(auth.pop("url", server.url), **auth) as js:
        await publish(js, result)
        async with asyncio.timeout(30):
            line = await process.stdout.readline()
    assert line, "commwatch central ended early"
    return dict(json.loads(line))


async def waits_saying(process: asyncio.subprocess.Process, words: bytes) -> None:
    assert process.stderr is not None
    async with asyncio.timeout(30):
        while words not in await process.stderr.readline():
            pass


async def output_of(process: asyncio.subprocess.Process) -> str:
    process.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(process.communicate(), 20)
    return out.decode() + err.decode()


@pytest.mark.parametrize("right", [True, False])
async def test_a_central_authenticates_with_an_nkey_seed_file_and_never_shows_it(
    tmp_path: Path, right: bool, start_central: StartCentral
) -> None:
    seed_file, public = user_seed(tmp_path, "central")
    other_file, _ = user_seed(tmp_path, "stranger")
    test_file, test_public = user_seed(tmp_path, "test")
    users = f"authorization {{ users = [ {{nkey: {public}}}, {{nkey: {test_public}}} ] }}"
    async with running_nats(tmp_path / "nats", config=users) as server:
        given = seed_file if right else other_file
        path = inventory(tmp_path, f"{{credentials: {{nkey_file: {given}}}}}")
        process = await start_central(path, server.url, log="DEBUG")
        if right:
            line = await takes_a_result(process, server, path, nkeys_seed=str(test_file))
            assert line["type"] == "result" and line["check_id"] == "north/wan/c0"
        else:
            await waits_saying(process, b"refused this central's credentials")
        said = await output_of(process)
    assert given.read_text().strip() not in said
    assert (process.returncode == 0) is right


@pytest.mark.parametrize("right", [True, False])
async def test_a_central_authenticates_with_a_creds_file_and_never_shows_its_seed(
    tmp_path: Path, right: bool, start_central: StartCentral
) -> None:
    operator, stranger = Operator(tmp_path), Operator(tmp_path / "stranger")
    (tmp_path / "stranger").mkdir()
    async with running_nats(tmp_path / "nats", config=operator.config) as server:
        given = operator.creds("central") if right else stranger.creds("central")
        path = inventory(tmp_path, f"{{credentials: {{creds_file: {given}}}}}")
        process = await start_central(path, server.url, log="DEBUG")
        if right:
            creds = str(operator.creds("agent"))
            line = await takes_a_result(process, server, path, user_credentials=creds)
            assert line["type"] == "result" and line["check_id"] == "north/wan/c0"
        else:
            await waits_saying(process, b"refused this central's credentials")
        said = await output_of(process)
    seed = given.read_text().split("-----BEGIN USER NKEY SEED-----\n")[1].split("\n")[0]
    assert seed not in said
    assert (process.returncode == 0) is right


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """The NATS servers' CA and certificate (for 127.0.0.1, the address nats-py checks), a
    client certificate of that CA, and a CA nothing here was signed by."""
    folder = tmp_path / "pki"
    folder.mkdir()
    ca = make_ca("commwatch test NATS CA")
    server_cert, server_key = write_pem(folder, "server", make_leaf(ca, ["127.0.0.1"]))
    client_cert, client_key = write_pem(
        folder, "client", make_leaf(ca, ["central.test"], client=True)
    )
    ca_file, _ = write_pem(folder, "ca", ca)
    stranger_ca, _ = write_pem(folder, "stranger-ca", make_ca("commwatch test stranger CA"))
    return {
        "ca": ca_file,
        "server_cert": server_cert,
        "server_key": server_key,
        "client_cert": client_cert,
        "client_key": client_key,
        "stranger_ca": stranger_ca,
    }


def tls_block(pki: dict[str, Path], mutual: bool) -> str:
    block = f"cert_file: {json.dumps(str(pki['server_cert']))}, "
    block += f"key_file: {json.dumps(str(pki['server_key']))}"
    if mutual:
        block += f", ca_file: {json.dumps(str(pki['ca']))}, verify: true"
    return f"tls {{ {block} }}"


def client_context(pki: dict[str, Path], mutual: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    if mutual:
        context.load_cert_chain(str(pki["client_cert"]), str(pki["client_key"]))
    return context


@pytest.mark.parametrize("mutual", [False, True], ids=["server-tls", "mutual-tls"])
async def test_a_central_speaks_tls_to_nats_with_the_configured_ca_and_client_certificate(
    tmp_path: Path, pki: dict[str, Path], mutual: bool, start_central: StartCentral
) -> None:
    async with running_nats(tmp_path / "nats", config=tls_block(pki, mutual)) as server:
        url = f"tls://127.0.0.1:{server.port}"
        tls = f"ca_file: {pki['ca']}"
        if mutual:
            tls += f", cert_file: {pki['client_cert']}, key_file: {pki['client_key']}"
        path = inventory(tmp_path, f"{{url: '{url}', tls: {{{tls}}}}}")
        process = await start_central(path, url, log="DEBUG")
        line = await takes_a_result(process, server, path, url=url, tls=client_context(pki, mutual))
        said = await output_of(process)
    assert line["type"] == "result" and line["check_id"] == "north/wan/c0"
    assert process.returncode == 0
    assert pki["client_key"].read_text() not in said


@pytest.mark.parametrize(
    "missing", ["trust", "client-certificate"], ids=["untrusted-server", "no-client-cert"]
)
async def test_a_nats_server_that_cannot_be_trusted_or_that_wants_a_certificate_is_not_used(
    tmp_path: Path, pki: dict[str, Path], missing: str, start_central: StartCentral
) -> None:
    mutual = missing == "client-certificate"
    async with running_nats(tmp_path / "nats", config=tls_block(pki, mutual)) as server:
        url = f"tls://127.0.0.1:{server.port}"
        ca = pki["stranger_ca"] if missing == "trust" else pki["ca"]
        path = inventory(tmp_path, f"{{url: '{url}', tls: {{ca_file: {ca}}}}}")
        process = await start_central(path, url, log="DEBUG")
        await waits_saying(process, b"cannot reach NATS at")
        said = await output_of(process)
    assert process.returncode == 3, said
    assert "Traceback" not in said


@pytest.mark.parametrize("method", ["nkey_file", "creds_file"])
def test_without_nkeys_an_nkey_or_creds_file_says_how_to_install_it(
    tmp_path: Path, method: str
) -> None:
    seed_file, _ = user_seed(tmp_path, "central")
    path = inventory(tmp_path, f"{{credentials: {{{method}: {seed_file}}}}}")
    blocker = (
        "import sys\n"
        "class NoNkeys:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'nkeys' or name.startswith('nkeys.'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, NoNkeys())\n"
        "from monitor.cli.main import main\n"
        f"sys.exit(main(['central', {str(path)!r}, '--nats', 'nats://127.0.0.1:9']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocker], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    kind = "an NKey seed file" if method == "nkey_file" else "a .creds file"
    assert done.returncode == 3, done.stderr
    assert done.stderr == (
        f"commwatch central authenticates with {kind}, which needs the nkeys package: "
        "pip install 'commwatch[cluster]'\n"
    )
    assert done.stdout == ""
