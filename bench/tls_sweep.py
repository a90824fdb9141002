"""Benchmark: one sweep of N tls checks against nginx on loopback, beside a bare handshake loop.

nginx (Debian's, `apt-get install nginx`) serves one certificate chain on 250 loopback
addresses with session resumption off, so every handshake is a full one, as a monitor's are. The
floor is a bare asyncio loop doing the same verified handshakes at the same concurrency, in the
same process and run; the ratio says what the tls probe's chain analysis costs on top.

    python bench/tls_sweep.py                # N = 1,000
    python bench/tls_sweep.py --checks 200   # a quick look
    python bench/tls_sweep.py --smoke        # N = 10, one round: that it runs, no figures

The port is one the kernel hands out and that is free on all 250 addresses, so two runs at once
do not collide.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
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
GLOBAL_CAP = 256
PER_HOST_CAP = 4
SERVER_NAME = "gateway.bench.test"


def free_port() -> int:
    """A port the kernel hands out on the first address and that binds on every other one."""
    for _ in range(20):
        with contextlib.ExitStack() as held:
            first = held.enter_context(socket.socket())
            first.bind((ADDRESSES[0], 0))
            port = first.getsockname()[1]
            try:
                for address in ADDRESSES[1:]:
                    held.enter_context(socket.socket()).bind((address, port))
            except OSError:
                continue
            return port
    raise SystemExit("no port is free on all 250 addresses")


def nginx_config(folder: Path, chain: Path, key: Path, port: int) -> Path:
    listens = "\n".join(f"        listen {a}:{port} ssl;" for a in ADDRESSES)
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


def start_nginx(folder: Path) -> tuple[subprocess.Popen[bytes], Path, int]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("nginx is not installed: apt-get install nginx")
    ca = make_ca("commwatch bench CA")
    leaf = make_leaf(ca, [SERVER_NAME], common_name=SERVER_NAME)
    chain = folder / "chain.pem"
    chain.write_bytes(leaf.cert_pem)
    key = folder / "leaf.key"
    key.write_bytes(leaf.key_pem)
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    port = free_port()
    config = nginx_config(folder, chain, key, port)
    process = subprocess.Popen([nginx, "-c", str(config), "-e", str(folder / "error.log")])
    # It listens on every address before it accepts on any: the last one answering is enough.
    deadline = time.monotonic() + 30
    while process.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((ADDRESSES[-1], port), 1):
            return process, ca_file, port
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise SystemExit(f"nginx did not start: {(folder / 'error.log').read_text()}")


async def floor(targets: list[str], port: int, ca_file: Path) -> tuple[float, int]:
    """Bare asyncio: a verified full handshake with SNI, then close; GLOBAL_CAP at once."""
    context = ssl.create_default_context(cafile=str(ca_file))

    async def handshake(address: str) -> None:
        _, writer = await asyncio.open_connection(
            address, port, ssl=context, server_hostname=SERVER_NAME
        )
        writer.transport.abort()

    return await timed_floor(targets, handshake, GLOBAL_CAP)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, action="append", help="sweep size (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--smoke", action="store_true", help="10 checks, one round")
    args = parser.parse_args()
    sizes, rounds = ([10], 1) if args.smoke else (args.checks or [1000], args.rounds)
    raise_open_file_limit()
    with tempfile.TemporaryDirectory() as workdir:
        folder = Path(workdir)
        nginx, ca_file, port = start_nginx(folder)
        try:
            for n in sizes:
                targets = [ADDRESSES[i % len(ADDRESSES)] for i in range(n)]
                inventory = folder / f"tls-{n}.yaml"
                write_inventory(
                    inventory,
                    [
                        f'kind: tls, target: "{t}:{port}", server_name: {SERVER_NAME}, '
                        f"ca_file: {ca_file}"
                        for t in targets
                    ],
                    GLOBAL_CAP,
                    PER_HOST_CAP,
                )
                floor_s, sweep_s = alternate(
                    rounds,
                    lambda t=targets: floor(t, port, ca_file),
                    lambda p=inventory: engine_sweep(p),
                )
                report(n, floor_s, sweep_s, cli_run(inventory))
        finally:
            nginx.terminate()
            nginx.wait(10)


if __name__ == "__main__":
    main()
