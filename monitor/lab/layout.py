"""Where the lab's devices live: one loopback address per device, fixed ports per service.

Fixed, so the shipped `inventory.yaml` can name them and `commwatch run --once inventory.yaml`
works against a `commwatch demo --lab-only` running in another terminal. Ports are high (no
privileges needed); the inventory's comments say what a real deployment uses. Tests shift every
port by an offset so they never collide with a demo someone has running.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass


class Behaviour(enum.StrEnum):
    HTTP_HEALTHY = "http: healthy"
    HTTP_SLOW = "http: slow (answers after 1.2 s)"
    HTTP_FLAKY = "http: every 3rd request fails with 503"
    TLS_HEALTHY = "https: healthy certificate from the lab CA"
    TLS_EXPIRING = "https: certificate expires in 20 days, its renewal 10 days overdue"
    TLS_EXPIRED = "https: certificate expired 3 days ago"
    TLS_WRONG_HOST = "https: certificate for another host name"
    TLS_UNTRUSTED = "https: certificate from an unknown CA"
    SSH_BANNER = "tcp: SSH banner, as a router's management plane"
    HANGING = "tcp: accepts, then never says a word"
    CLOSED = "tcp: nothing listens (connection refused)"
    DNS = "dns: answers for example.net over UDP and TCP"
    SNMP = "snmp: v2c and v3 authPriv agent, IF-MIB and system"
    NTP = "ntp: stratum 1 master clock (GPS), serving this host's time"
    SIP_HEALTHY = "sip: SBC answering OPTIONS 200 OK over UDP and TCP"
    SIP_MAINTENANCE = "sip: SBC in maintenance, 503 with Retry-After"


HTTP_PORT = 8080
TLS_PORT = 8443
SSH_PORT = 2222
DNS_PORT = 5300
SNMP_PORT = 1161
NTP_PORT = 1123
SIP_PORT = 5060


@dataclass(frozen=True)
class Service:
    name: str
    behaviour: Behaviour
    address: str
    base_port: int

    def port(self, offset: int = 0) -> int:
        return self.base_port + offset

    def endpoint(self, offset: int = 0) -> str:
        return f"{self.address}:{self.port(offset)}"


SERVICES: tuple[Service, ...] = (
    # North County PSAP: metro fibre (127.0.10.x), LTE failover (127.0.11.x)
    Service("psap-edge-router", Behaviour.SSH_BANNER, "127.0.10.1", SSH_PORT),
    Service("psap-edge-router-snmp", Behaviour.SNMP, "127.0.10.1", SNMP_PORT),
    Service("cad-api", Behaviour.HTTP_HEALTHY, "127.0.10.2", HTTP_PORT),
    Service("cad-api-tls", Behaviour.TLS_HEALTHY, "127.0.10.2", TLS_PORT),
    Service("psap-resolver", Behaviour.DNS, "127.0.10.3", DNS_PORT),
    Service("lte-router", Behaviour.SSH_BANNER, "127.0.11.1", SSH_PORT),
    Service("cad-api-via-lte", Behaviour.HTTP_SLOW, "127.0.11.2", HTTP_PORT),
    Service("lte-router-webui", Behaviour.TLS_UNTRUSTED, "127.0.11.3", TLS_PORT),
    # Central Dispatch: carrier A (127.0.20.x), carrier B (127.0.21.x)
    Service("paging-gateway", Behaviour.HTTP_FLAKY, "127.0.20.1", HTTP_PORT),
    Service("paging-gateway-tls", Behaviour.TLS_EXPIRING, "127.0.20.1", TLS_PORT),
    Service("dispatch-resolver", Behaviour.DNS, "127.0.20.3", DNS_PORT),
    Service("dispatch-master-clock", Behaviour.NTP, "127.0.20.4", NTP_PORT),
    Service("dispatch-sbc", Behaviour.SIP_HEALTHY, "127.0.20.5", SIP_PORT),
    Service("carrier-b-ce-router", Behaviour.CLOSED, "127.0.21.1", SSH_PORT),
    Service("carrier-b-portal", Behaviour.HANGING, "127.0.21.2", TLS_PORT),
    Service("carrier-b-sbc", Behaviour.SIP_MAINTENANCE, "127.0.21.5", SIP_PORT),
    # Ridge Mountain radio site: microwave (127.0.30.x), satellite (127.0.31.x)
    Service("ridge-site-router", Behaviour.SSH_BANNER, "127.0.30.1", SSH_PORT),
    Service("rfss-console", Behaviour.TLS_EXPIRED, "127.0.30.2", TLS_PORT),
    Service("ridge-radio-snmp", Behaviour.SNMP, "127.0.30.3", SNMP_PORT),
    Service("ridge-ups-snmp", Behaviour.SNMP, "127.0.30.4", SNMP_PORT),
    Service("vsat-modem", Behaviour.HTTP_HEALTHY, "127.0.31.1", HTTP_PORT),
    Service("vsat-modem-tls", Behaviour.TLS_WRONG_HOST, "127.0.31.1", TLS_PORT),
)


def service(name: str) -> Service:
    return next(s for s in SERVICES if s.name == name)


class PortTaken(Exception):
    """A fixed lab port is in use: most likely another demo lab is running."""

    def __init__(self, address: str, port: int, cause: OSError) -> None:
        reason = os.strerror(cause.errno) if cause.errno else str(cause)
        super().__init__(f"{address}:{port}: {reason.lower()}")
        self.endpoint = f"{address}:{port}"
