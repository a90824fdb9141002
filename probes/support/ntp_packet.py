"""NTP packets (RFC 5905 §7.3): the 48-byte header a client sends and a server answers, what
its fields mean, and the arithmetic on its timestamps.

Timestamps stay the raw 64-bit values of the wire (32 bits of seconds since 1900, 32 of
fraction) and are only ever subtracted modulo 2**64, as RFC 5905 §6 advises: a difference is
right across the 2036 rollover of the seconds field, as long as the two clocks are within 68
years of each other. Extension fields and MACs after the header are not read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# LI/VN/Mode, stratum, poll, precision, root delay, root dispersion, reference id, and the
# reference, origin, receive and transmit timestamps.
_HEADER = struct.Struct("!BBbbII4sQQQQ")
HEADER_SIZE = _HEADER.size  # 48
UNIX_EPOCH = 2_208_988_800  # 1970-01-01 in seconds of the NTP era 0 (from 1900-01-01)
VERSION = 4
ACCEPTED_VERSIONS = (3, 4)  # RFC 5905 servers answer v4 queries; v3 (RFC 1305) ones still do
MODE_CLIENT = 3
MODE_SERVER = 4
LEAP_ALARM = 3  # the server's clock is not synchronised
UNSYNCHRONISED = 16  # the stratum of a clock that is not synchronised (17-255 are reserved)
# What the leap indicator says, as the observation words it.
LEAP = ("none", "insert", "delete", "unsynchronised")
# The kiss codes (RFC 5905 §7.4) a client must act on; every other stratum-0 code is a
# server saying it has no time to give (INIT, STEP, ...).
KISSES = {
    "DENY": "access denied",
    "RSTR": "access restricted",
    "RATE": "rate limited: we polled too often",
}
_FRACTION = 2**32
_WRAP = 2**64


@dataclass(frozen=True, slots=True)
class Packet:
    leap: int
    version: int
    mode: int
    stratum: int
    poll: int  # log2 seconds
    precision: int  # log2 seconds
    root_delay: float  # seconds
    root_dispersion: float  # seconds
    reference_id: bytes
    reference: int  # the timestamps, raw
    origin: int
    receive: int
    transmit: int

    @property
    def kiss(self) -> str | None:
        """The kiss-of-death code a client must obey (DENY, RSTR, RATE), if this is one."""
        code = reference_text(0, self.reference_id)
        return code if self.stratum == 0 and code in KISSES else None

    def fault(self) -> str | None:
        """Why this reply to our query cannot be a server's answer, if it cannot."""
        if self.mode != MODE_SERVER:
            return f"mode {self.mode}, where a server's is {MODE_SERVER}"
        if self.version not in ACCEPTED_VERSIONS:
            return f"NTP version {self.version}, not 3 or 4"
        if self.kiss is None and (self.transmit == 0 or self.receive == 0):
            return "a zero receive or transmit timestamp"
        return None


def request(transmit: int, poll: int) -> bytes:
    """A client query (mode 3, version 4) carrying `transmit`, and nothing else of ours."""
    first = VERSION << 3 | MODE_CLIENT
    return _HEADER.pack(first, 0, poll, 0, 0, 0, bytes(4), 0, 0, 0, transmit)


def parse(data: bytes) -> Packet:
    """The header of `data`; ValueError when it is shorter than one."""
    if len(data) < HEADER_SIZE:
        raise ValueError(f"{len(data)} bytes, shorter than an NTP header ({HEADER_SIZE})")
    first, stratum, poll, precision, delay, dispersion, refid, *stamps = _HEADER.unpack_from(data)
    reference, origin, receive, transmit = stamps
    return Packet(
        leap=first >> 6,
        version=first >> 3 & 7,
        mode=first & 7,
        stratum=stratum,
        poll=poll,
        precision=precision,
        root_delay=delay / 65536,  # NTP short format: 16.16 bits of seconds
        root_dispersion=dispersion / 65536,
        reference_id=refid,
        reference=reference,
        origin=origin,
        receive=receive,
        transmit=transmit,
    )


def timestamp(unix_ns: int) -> int:
    """A time.time_ns() reading as an NTP timestamp (of whichever era it falls in)."""
    seconds, nanoseconds = divmod(unix_ns, 10**9)
    return ((seconds + UNIX_EPOCH) % _FRACTION) * _FRACTION + nanoseconds * _FRACTION // 10**9


def seconds_between(later: int, earlier: int) -> float:
    """`later - earlier` in seconds, for timestamps within 68 years of each other."""
    difference = (later - earlier) % _WRAP
    if difference >= _WRAP // 2:
        difference -= _WRAP
    return difference / _FRACTION


def reference_text(stratum: int, reference_id: bytes) -> str:
    """The reference id as ntpq shows it: the four ASCII characters of a kiss code (stratum 0)
    or of a primary source (stratum 1: GPS, PPS); for the others the IPv4 address of the
    server's own server (or the first four bytes of the MD5 of an IPv6 one, RFC 5905 §7.3).
    Non-ASCII bytes show as escapes; the text is still the peer's, for `printable()`."""
    if stratum <= 1:
        return reference_id.rstrip(b"\0").decode("ascii", errors="backslashreplace")
    return ".".join(str(byte) for byte in reference_id)
