"""The NTP header as the probe writes and reads it, and its timestamp arithmetic across eras;
the lab's server answers what the probe asks."""

from __future__ import annotations

import pytest

from monitor.lab.ntp_peer import ServerClock, answer
from probes.support import ntp_packet

ROLLOVER = 2**32 - ntp_packet.UNIX_EPOCH  # 2036-02-07T06:28:16Z: the seconds field wraps


def test_a_query_is_48_bytes_of_version_4_client_mode_carrying_only_its_nonce():
    query = ntp_packet.request(0xDEADBEEF_01234567, 6)
    assert len(query) == ntp_packet.HEADER_SIZE == 48
    packet = ntp_packet.parse(query)
    assert (packet.leap, packet.version, packet.mode, packet.poll) == (0, 4, 3, 6)
    assert packet.transmit == 0xDEADBEEF_01234567
    assert query[:2] == b"\x23\x00" and query[4:40] == bytes(36)


def test_short_data_is_refused_and_anything_after_the_header_ignored():
    with pytest.raises(ValueError, match="47 bytes, shorter than an NTP header"):
        ntp_packet.parse(bytes(47))
    extended = ntp_packet.request(5, 6) + b"\xff" * 20  # an extension field or a MAC
    assert ntp_packet.parse(extended).transmit == 5


def test_timestamps_subtract_right_across_the_2036_rollover():
    before = ntp_packet.timestamp((ROLLOVER - 1) * 10**9)
    after = ntp_packet.timestamp((ROLLOVER + 1) * 10**9 + 500_000_000)
    assert after >> 32 == 1  # era 1, second 1
    assert ntp_packet.seconds_between(after, before) == pytest.approx(2.5)
    assert ntp_packet.seconds_between(before, after) == pytest.approx(-2.5)


def test_a_timestamp_keeps_nanoseconds_to_the_fraction():
    stamp = ntp_packet.timestamp(1_800_000_000 * 10**9 + 250_000_000)
    assert stamp >> 32 == 1_800_000_000 + ntp_packet.UNIX_EPOCH
    assert (stamp & 0xFFFFFFFF) / 2**32 == 0.25


@pytest.mark.parametrize(
    ("stratum", "refid", "text"),
    [
        (0, b"DENY", "DENY"),
        (1, b"GPS\0", "GPS"),
        (1, b"\x1b[2J", "\x1b[2J"),  # the peer's text, for printable() to make inert
        (1, b"G\xffS\0", "G\\xffS"),  # not ASCII: shown as an escape
        (2, bytes([192, 0, 2, 1]), "192.0.2.1"),
        (16, bytes(4), "0.0.0.0"),
    ],
)
def test_the_reference_id_reads_as_ntpq_shows_it(stratum, refid, text):
    assert ntp_packet.reference_text(stratum, refid) == text


def test_only_deny_rstr_and_rate_are_kisses_to_obey():
    def reply(code: bytes) -> ntp_packet.Packet:
        wire = answer(ntp_packet.request(7, 6), ServerClock(stratum=0, reference_id=code), 1e9)
        assert wire is not None
        return ntp_packet.parse(wire)

    assert [reply(code).kiss for code in (b"DENY", b"RSTR", b"RATE")] == ["DENY", "RSTR", "RATE"]
    assert reply(b"INIT").kiss is None
    assert reply(b"INIT").fault() is None  # a server without time, not a broken reply


def test_the_lab_server_answers_a_query_and_drops_anything_else():
    query = ntp_packet.request(0x1122334455667788, 6)
    packet = ntp_packet.parse(answer(query, ServerClock(), 1_800_000_000.0) or b"")
    assert (packet.mode, packet.version, packet.stratum) == (4, 4, 1)
    assert packet.origin == 0x1122334455667788
    assert packet.fault() is None
    assert (
        ntp_packet.seconds_between(packet.receive, ntp_packet.timestamp(1_800_000_000 * 10**9)) == 0
    )
    reflected = answer(bytes([0x24]) + query[1:], ServerClock(), 1e9)  # a server's own mode
    assert reflected is None and answer(query[:47], ServerClock(), 1e9) is None
