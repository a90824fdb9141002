"""A real SIP server for the sip probe's tests: Debian's kamailio, in the foreground with a
runtime folder of the test's own, on free loopback ports (UDP and TCP on one port, TLS on
another, IPv4 and IPv6), with a certificate the test makes.

Its configuration only answers, statelessly (the sl module): it never forwards a request, looks
up no name (dns=no, rev_dns=no) and listens on loopback alone (auto_aliases=no, listen=). What
it answers to OPTIONS depends on the Request-URI's user, so one server serves every case:
none (200 OK), `maintenance` (503 with Retry-After), `maintenance-silent` (503 without),
`nobody` (404 Not Found), `broken` (500 Server Internal Error).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.lab.pki import Issued
from probes.support.sip_message import new_options
from tests.peers import ports
from tests.peers.binaries import installed

LOCALHOST = "127.0.0.1"
LOCALHOST6 = "::1"
RETRY_AFTER = 120
_MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules"
_START_TIMEOUT = 20.0
_ATTEMPTS = 3  # a port another test took between our look and kamailio's bind: try others


def kamailio_binary() -> str:
    return installed(
        "kamailio",
        "the sip probe tests run a real SIP server",
        "kamailio kamailio-tls-modules",
    )


def modules_dir() -> str:
    """Where Debian puts kamailio's modules (the multiarch folder of this machine)."""
    for candidate in (_MODULES, *Path("/usr/lib").glob("*/kamailio/modules")):
        if (Path(candidate) / "tls.so").exists():
            return str(candidate)
    pytest.fail(
        "kamailio's TLS module is not installed (Debian/Ubuntu: apt-get install "
        "kamailio-tls-modules)",
        pytrace=False,
    )


def free_port_pair() -> tuple[int, int]:
    """Two ports free for UDP and TCP on 127.0.0.1 and ::1 alike, as far as can be told now."""
    first, second = ports.free_ports(2, ports.UDP_AND_TCP, (LOCALHOST, LOCALHOST6))
    return first, second


def kamailio_config(sip_port: int, tls_port: int, tls_config: Path) -> str:
    listens = [
        f"listen={proto}:{address}:{port}"
        for address in (LOCALHOST, f"[{LOCALHOST6}]")
        for proto, port in (("udp", sip_port), ("tcp", sip_port), ("tls", tls_port))
    ]
    return f"""#!KAMAILIO
debug=2
log_stderror=yes
children=1
tcp_children=1
dns=no
rev_dns=no
auto_aliases=no
enable_tls=yes
{chr(10).join(listens)}
mpath="{modules_dir()}"
loadmodule "sl.so"
loadmodule "sanity.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "tls.so"
modparam("tls", "config", "{tls_config}")

request_route {{
    # What RFC 3261 asks of a request (sanity answers 400 itself), and of commwatch's: a
    # request-URI, To, From, Call-ID, CSeq and Via that parse, the branch cookie and rport.
    if (!sanity_check()) {{
        exit;
    }}
    if (!is_method("OPTIONS")) {{
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }}
    if ($ft == $null || $hdr(Max-Forwards) != "70" || $cl != 0 || !is_present_hf("Contact")) {{
        sl_send_reply("400", "Malformed: From tag, Max-Forwards, Content-Length or Contact");
        exit;
    }}
    if (!($hdr(Via) =~ ";branch=z9hG4bK[0-9a-f]{{24}};rport$") || !($ua =~ "^commwatch/")) {{
        sl_send_reply("400", "Malformed: Via or User-Agent");
        exit;
    }}
    if ($rU == "maintenance") {{
        append_to_reply("Retry-After: {RETRY_AFTER}\\r\\n");
        sl_send_reply("503", "Service Unavailable");
        exit;
    }}
    if ($rU == "maintenance-silent") {{
        sl_send_reply("503", "Service Unavailable");
        exit;
    }}
    if ($rU == "nobody") {{
        sl_send_reply("404", "Not Found");
        exit;
    }}
    if ($rU == "broken") {{
        sl_send_reply("500", "Server Internal Error");
        exit;
    }}
    sl_send_reply("200", "OK");
}}
"""


def _tls_config(folder: Path, leaf: Issued) -> Path:
    certificate, key = leaf.write(folder, "kamailio")
    config = folder / "tls.cfg"
    config.write_text(
        "[server:default]\n"
        "method = TLSv1.2+\n"
        f"certificate = {certificate}\n"
        f"private_key = {key}\n"
        "verify_certificate = no\n"
        "require_certificate = no\n"
    )
    return config


@dataclass
class Kamailio:
    folder: Path
    sip_port: int  # UDP and TCP
    tls_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.folder / "kamailio.log"

    def target(self, address: str = LOCALHOST, tls: bool = False) -> str:
        host = f"[{address}]" if ":" in address else address
        return f"{host}:{self.tls_port if tls else self.sip_port}"

    def start(self, leaf: Issued) -> None:
        config = self.folder / "kamailio.cfg"
        config.write_text(
            kamailio_config(self.sip_port, self.tls_port, _tls_config(self.folder, leaf))
        )
        runtime = self.folder / "run"
        runtime.mkdir(exist_ok=True)
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [
                    kamailio_binary(),
                    *("-DD", "-E"),  # the foreground, logging to stderr
                    *("-f", str(config)),
                    *("-Y", str(runtime)),
                    *("-P", str(runtime / "kamailio.pid")),
                    *("-m", "32", "-M", "4"),  # MB of shared and private memory: plenty
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_until_answering(self) -> bool:
        """True once it answers OPTIONS on UDP and accepts TCP and TLS connections; False if it
        exited (its log says why)."""
        deadline = time.monotonic() + _START_TIMEOUT
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect((LOCALHOST, self.sip_port))
            sock.settimeout(0.1)
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    return False
                request = new_options(f"sip:{self.target()}", None, "UDP", sock.getsockname())
                with contextlib.suppress(TimeoutError, ConnectionRefusedError):
                    sock.send(request.encode())
                    if sock.recv(65535).startswith(b"SIP/2.0 200") and self._accepting():
                        return True
        pytest.fail(f"kamailio did not answer; its log ends:\n{self.log_tail()}", pytrace=False)

    def _accepting(self) -> bool:
        for port in (self.sip_port, self.tls_port):
            try:
                socket.create_connection((LOCALHOST, port), timeout=0.5).close()
            except OSError:
                return False
        return True

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """SIGTERM to its process group (its children with it), SIGKILL after 10 s."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def running_kamailio(folder: Path, leaf: Issued) -> Iterator[Kamailio]:
    """A kamailio answering on fresh loopback ports, stopped when the block ends."""
    for attempt in range(_ATTEMPTS):
        server = Kamailio(folder / f"try{attempt}", *free_port_pair())
        server.folder.mkdir(parents=True)
        server.start(leaf)
        try:
            if server.wait_until_answering():
                yield server
                return
        finally:
            server.stop()
        if "Address already in use" not in server.log_tail():
            pytest.fail(f"kamailio exited; its log ends:\n{server.log_tail()}", pytrace=False)
    pytest.fail(f"kamailio found no free ports in {_ATTEMPTS} tries", pytrace=False)
