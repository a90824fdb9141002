"""Benchmark: one sweep of N tls checks against nginx on loopback, beside a bare handshake loop.

nginx (Debian's, `apt-get install nginx-core`) serves one certificate chain on 250 loopback
addresses with session resumption off, so every handshake is a full one, as a monitor's are. The
floor is a bare asyncio loop doing the same verified handshakes at the same concurrency, in the
same process and run; the ratio says what the tls probe's chain analysis costs on top.

    python bench/tls_sweep.py                # N = 1,000
    python bench/tls_sweep.py --checks 200   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

# common puts the repository on sys.path, so it comes before the project's own imports.
from common import (
    alternate,
    cli_run,
    engine_sweep,
    loopback_addresses,
    raise_open_file_limit,
    report,
    timed_floor,
    write_inventory,
)

from tests.peers.pki import make_ca, make_leaf

ADDRESSES = loopback_addresses(78, 250)
PORT = 8443
GLOBAL_CAP = 256
PER_HOST_CAP = 4
SERVER_NAME = "gateway.bench.test"


def nginx_config(folder: Path, chain: Path, key: Path) -> Path:
    listens = "\n".join(f"        listen {a}:{PORT} ssl;" for a in ADDRESSES)
    config = folder / "nginx.conf"
    config.write_text(f"""\
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    ssl_session_cache off;
    ssl_session_tickets off;
    ssl_protocols TLSv1.2 TLSv1.3;
    server {{
{listens}
        ssl_certificate {chain};
        ssl_certificate_key {key};
        return 204;
    }}
}}
""")
    return config


def start_nginx(folder: Path) -> tuple[subprocess.Popen[bytes], Path]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("nginx is not installed: apt-get install nginx-core")
    ca = make_ca("commwatch bench CA")
    leaf = make_leaf(ca, [SERVER_NAME], common_name=SERVER_NAME)
    chain = folder / "chain.pem"
    chain.write_bytes(leaf.cert_pem)
    key = folder / "leaf.key"
    key.write_bytes(leaf.key_pem)
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    config = nginx_config(folder, chain, key)
    process = subprocess.Popen([nginx, "-c", str(config), "-e", str(folder / "error.log")])
    time.sleep(0.5)
    if process.poll() is not None:
        raise SystemExit((folder / "error.log").read_text())
    return process, ca_file


async def floor(targets: list[str], ca_file: Path) -> tuple[float, int]:
    """Bare asyncio: a verified full handshake with SNI, then close; GLOBAL_CAP at once."""
    context = ssl.create_default_context(cafile=str(ca_file))

    async def handshake(address: str) -> None:
        _, writer = await asyncio.open_connection(
            address, PORT, ssl=context, server_hostname=SERVER_NAME
        )
        writer.transport.abort()

    return await timed_floor(targets, handshake, GLOBAL_CAP)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, action="append", help="sweep size (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    args = parser.parse_args()
    raise_open_file_limit()
    with tempfile.TemporaryDirectory() as workdir:
        folder = Path(workdir)
        nginx, ca_file = start_nginx(folder)
        try:
            for n in args.checks or [1000]:
                targets = [ADDRESSES[i % len(ADDRESSES)] for i in range(n)]
                inventory = folder / f"tls-{n}.yaml"
                write_inventory(
                    inventory,
                    [
                        f'kind: tls, target: "{t}:{PORT}", server_name: {SERVER_NAME}, '
                        f"ca_file: {ca_file}"
                        for t in targets
                    ],
                    GLOBAL_CAP,
                    PER_HOST_CAP,
                )
                floor_s, sweep_s = alternate(
                    args.rounds,
                    lambda t=targets: floor(t, ca_file),
                    lambda p=inventory: engine_sweep(p),
                )
                report(n, floor_s, sweep_s, cli_run(inventory))
        finally:
            nginx.terminate()
            nginx.wait(10)


if __name__ == "__main__":
    main()
