"""Echo replies the kernel would never send: a responder of the test (tests/peers/icmp_peers.py),
in a network namespace where the kernel's own echo replies are off, answers each request as
its plan says, so what the probe must count is known exactly. Every test runs the probe as
`commwatch probe icmp` inside the probe's namespace, through a datagram ICMP socket (the
namespace's ping_group_range allows every group) and through the shared raw socket (it
allows none, and the probe runs as root).
"""

from __future__ import annotations

import itertools
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from monitor.api.readers import result_from_record
from tests.peers.icmp_peers import (
    ALLOW_EVERY_GROUP,
    NO_GROUP,
    TARGET_V4,
    TARGET_V6,
    WRONG_V4,
    WRONG_V6,
    IcmpPath,
    Step,
    icmp_path,
    probe_in,
    responding,
)
from tui.present import info_text

REPLY_TIMEOUT = 0.3
INTERVAL = 0.1
# What the echoes' own time (the result's duration, as the runner measures it) may overrun by
# on a loaded machine: a scheduling delay, never a second wait.
SLACK_MS = 250


@pytest.fixture(scope="module")
def path() -> Iterator[IcmpPath]:
    with icmp_path() as made:
        yield made


@pytest.fixture(params=[socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
def family(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture(params=["datagram", "raw"])
def kind(request: pytest.FixtureRequest, path: IcmpPath) -> str:
    groups = ALLOW_EVERY_GROUP if request.param == "datagram" else NO_GROUP
    path.probe.sysctl("net.ipv4.ping_group_range", groups)
    return str(request.param)


def ping(
    path: IcmpPath, family: int, plan: list[Step], count: int, reply_timeout: float = REPLY_TIMEOUT
) -> tuple[int, dict[str, Any]]:
    with responding(path, plan):
        return probe_in(
            path.probe,
            path.target(family),
            *("--count", str(count), "--echo-interval", f"{INTERVAL * 1000:g}ms"),
            *("--reply-timeout", f"{reply_timeout * 1000:g}ms", "--timeout", "10s"),
        )


def rfc3550(rtts: list[float]) -> float:
    estimate = 0.0
    for earlier, later in itertools.pairwise(rtts):
        estimate += (abs(later - earlier) - estimate) / 16
    return estimate


def test_each_untrusted_reply_is_counted_and_only_the_good_ones_are_timed(path, family, kind):
    plan: list[Step] = [
        {"do": "answer"},
        {"do": "drop"},
        {"do": "answer", "delay": 0.05},
        {"do": "answer", "copies": 3},  # and two duplicates
        {"do": "answer", "delay": 0.5},  # late: after the 300ms reply timeout
        {"do": "wrong_source"},
        {"do": "corrupt"},
        {"do": "stray"},
        {"do": "unreachable"},
        {"do": "answer"},
    ]
    status, record = ping(path, family, plan, count=10)
    seen = record["observations"]
    assert seen["socket"] == kind
    assert (seen["sent"], seen["received"], seen["loss_pct"]) == (10, 4, 60.0)
    counted = ("late", "duplicates", "wrong_source", "corrupted", "strays", "icmp_errors")
    assert [seen[key] for key in counted] == [1, 2, 1, 1, 1, 1]
    wrong = WRONG_V4 if family == socket.AF_INET else WRONG_V6
    target = TARGET_V4 if family == socket.AF_INET else TARGET_V6
    assert seen["wrong_source_address"] == wrong
    unreachable = (
        "destination host unreachable"
        if family == socket.AF_INET
        else "destination unreachable: address unreachable"
    )
    assert seen["errors"] == f"{unreachable}, reported by {target} (1 of 10)"
    assert seen["replies"] == (
        f"4 of 10 answered; 1 late, 2 duplicated, 1 from another address ({wrong}), 1 with a "
        "corrupted payload, 1 answering no request of this check; "
        f"{unreachable}, reported by {target} (1 of 10)"
    )
    # Timed: the four good replies alone, none of them the late one.
    assert 45 <= seen["rtt_max_ms"] < 50 + 25
    assert seen["rtt_max_ms"] < REPLY_TIMEOUT * 1000
    # 60% lost is not above the default 60%: WARN, not CRIT.
    assert status == 1 and record["severity"] == "WARN"
    assert record["summary"].startswith("loss 60% (4 of 10 answered; 1 late, 2 duplicated")
    # The dashboard's Info column: the loss (which says its verdict) and what was not trusted.
    shown = info_text(result_from_record(record), time.time())
    assert re.fullmatch(
        r"rtt \d+(\.\d+)?ms · loss 60% · 1 late · 2 duplicated · 1 from another address "
        r"· 1 corrupted",
        shown,
    ), shown


def test_loss_and_jitter_are_what_the_responder_made_them(path, family, kind):
    """Replies 0 and 60ms late by turns, one request dropped: the loss is exactly one in ten,
    and the RTTs, their mdev and the jitter are the delays' own, give or take the scheduling
    noise of a loaded machine (which the jitter filter divides by 16 at each step)."""
    delays = [0.0, 0.06, 0.0, 0.06, 0.0, None, 0.06, 0.0, 0.06, 0.0]
    plan: list[Step] = [
        {"do": "drop"} if delay is None else {"do": "answer", "delay": delay} for delay in delays
    ]
    status, record = ping(path, family, plan, count=10)
    seen = record["observations"]
    assert (seen["sent"], seen["received"], seen["loss_pct"]) == (10, 9, 10.0)
    planned = [delay * 1000 for delay in delays if delay is not None]
    assert seen["jitter_ms"] == pytest.approx(rfc3550(planned), abs=4)
    assert seen["rtt_avg_ms"] == pytest.approx(sum(planned) / len(planned), abs=4)
    mean = sum(planned) / len(planned)
    mdev = (sum((d - mean) ** 2 for d in planned) / len(planned)) ** 0.5
    assert seen["rtt_mdev_ms"] == pytest.approx(mdev, abs=4)
    assert seen["rtt_min_ms"] < 5 and 60 <= seen["rtt_max_ms"] < 60 + 20
    assert status == 0, record["summary"]  # 10% is within the default 20%


def test_a_lost_request_is_not_waited_for_beyond_its_own_reply_timeout(path, family, kind):
    """The first request is dropped, the last answered at once: the check ends then, since
    the lost one's reply timeout ran out long before, not a reply timeout after the last."""
    status, record = ping(path, family, [{"do": "drop"}], count=10, reply_timeout=0.3)
    assert (record["observations"]["received"], record["observations"]["loss_pct"]) == (9, 10.0)
    assert status == 0, record["summary"]
    # The last request leaves at 900ms and its reply comes at once; before, the check listened
    # on until 1200ms.
    assert record["duration_ms"] < 9 * INTERVAL * 1000 + 150, record["duration_ms"]


def test_silence_is_crit_no_echo_replies_within_the_time_the_echoes_take(path, family, kind):
    status, record = ping(path, family, [{"do": "drop"}] * 3, count=3)
    assert status == 2
    assert record["error"] == {"class": "timeout", "message": "no echo replies (3 sent)"}
    assert record["observations"]["loss_pct"] == 100.0
    loss = next(v for v in record["verdicts"] if v["condition"] == "loss")
    assert loss["severity"] == "CRIT" and loss["finding"] == "loss 100% (0 of 3 answered)"
    # Two intervals and a reply timeout: far from the 10s timeout.
    assert record["duration_ms"] < (2 * INTERVAL + REPLY_TIMEOUT) * 1000 + SLACK_MS


@pytest.mark.parametrize(
    ("plan", "why"),
    [
        # Late, and still within the time the check listens: the last request's 300ms.
        ([*[{"do": "answer", "delay": 0.35}] * 3, {"do": "drop"}, {"do": "drop"}], "3 late"),
        ([{"do": "wrong_source"}] * 5, "5 from another address"),
        ([{"do": "stray"}, {"do": "corrupt"}, *[{"do": "drop"}] * 3], "1 with a corrupted"),
    ],
    ids=["late", "wrong-source", "stray-corrupt"],
)
def test_replies_not_trusted_are_no_replies_and_say_why(path, family, kind, plan, why):
    status, record = ping(path, family, plan, count=5)
    assert status == 2 and record["error"]["class"] == "timeout"
    message = record["error"]["message"]
    assert message.startswith("no echo replies (5 sent): ") and why in message
    assert "rtt_avg_ms" not in record["observations"]


def test_every_request_refused_by_an_icmp_error_is_crit_unreachable_naming_it(path, family, kind):
    status, record = ping(path, family, [{"do": "unreachable", "code": 0}] * 3, count=3)
    assert status == 2 and record["error"]["class"] == "unreachable"
    words = (
        "destination network unreachable"
        if family == socket.AF_INET
        else "destination unreachable: no route to destination"
    )
    target = TARGET_V4 if family == socket.AF_INET else TARGET_V6
    assert record["error"]["message"] == f"no echo replies (3 sent): {words}, reported by {target}"
    assert record["observations"]["icmp_errors"] == 3


def test_a_flood_of_duplicates_is_counted_and_the_echoes_end_on_time(path, family, kind):
    """Five hundred copies of one reply: counted, never timed, and the check ends as planned."""
    status, record = ping(path, family, [{"do": "answer", "copies": 500}], count=3)
    seen = record["observations"]
    assert status == 0, record["summary"]
    assert (seen["received"], seen["loss_pct"]) == (3, 0.0)
    # The socket's receive buffer may drop some of a burst: at most 499 are counted.
    assert 100 <= seen["duplicates"] <= 499
    assert record["duration_ms"] < (2 * INTERVAL + REPLY_TIMEOUT) * 1000 + SLACK_MS
