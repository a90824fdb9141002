"""One check from raw values (monitor/config/checks.py): what `adhoc_check` builds for
`commwatch probe`, the schedule's rules at their bounds, and the parse memo keeping values of
different types apart."""

from __future__ import annotations

import dataclasses

import pytest

from monitor.config.checks import ParseMemo, adhoc_check, parse_options, parse_schedule
from monitor.config.inventory import Schedule
from monitor.config.loader import load_inventory
from monitor.core.model import CheckRef
from monitor.core.options import OptionError, integer
from monitor.core.yamlnodes import Location
from probes.registry import REGISTRY
from probes.tcp import TcpOptions
from tests.test_inventory import GOOD, write


def test_an_adhoc_check_is_one_of_its_own_outside_any_inventory():
    check = adhoc_check("tcp", {"target": "127.0.0.1:9"})
    assert check.ref == CheckRef(
        check_id="adhoc/tcp",
        site_id="adhoc",
        link_id="tcp",
        kind="tcp",
        target="127.0.0.1:9",
        host="127.0.0.1",
        tags=(),
    )
    assert (check.interval, check.timeout, check.retries) == (60.0, 10.0, 3)
    assert (check.description, check.location) == ("", Location("<command line>", 0, 0))
    assert check.probe.kind == "tcp"
    assert check.options.target == ("127.0.0.1", 9)


@pytest.mark.parametrize(
    ("values", "interval", "timeout"),
    [
        ({"timeout": "90s"}, 90.0, 90.0),  # no interval: as long as its timeout, at least 60s
        ({"timeout": "5s"}, 60.0, 5.0),
        ({"timeout": 30}, 60.0, 30.0),
        ({"interval": "10s", "timeout": "2s"}, 10.0, 2.0),
    ],
)
def test_an_adhoc_checks_interval_follows_its_timeout(values, interval, timeout):
    check = adhoc_check("tcp", {"target": "127.0.0.1:9", **values})
    assert (check.interval, check.timeout) == (interval, timeout)


@pytest.mark.parametrize(
    ("values", "key", "message"),
    [
        ({}, "target", "'target' is required for tcp checks"),
        (
            {"target": "127.0.0.1:notaport", "latency_warn": "soon"},
            "target",  # the first fault
            "'notaport' is not a port number",
        ),
        ({"target": "127.0.0.1:9", "retries": 11}, "retries", "11 is out of range"),
        (
            {"target": "127.0.0.1:9", "interval": "5s"},
            "interval",  # the timeout is the default one: the interval is what was written
            "timeout 10s is longer than interval 5s",
        ),
    ],
)
def test_an_adhoc_check_names_the_key_at_fault(values, key, message):
    with pytest.raises(OptionError) as raised:
        adhoc_check("tcp", values)
    assert raised.value.key == key
    assert raised.value.message.startswith(message)


def test_an_inventory_check_carries_its_site_link_kind_and_tags(tmp_path):
    check = load_inventory(write(tmp_path, GOOD)).checks[0]
    assert check.ref == CheckRef(
        check_id="psap-north/fibre/router",
        site_id="psap-north",
        link_id="fibre",
        kind="tcp",
        target="127.0.0.1:22",
        host="127.0.0.1",
        tags=("psap", "fibre", "ssh"),
    )


@pytest.mark.parametrize(
    ("values", "schedule"),
    [
        ({}, Schedule()),
        ({"interval": "10s", "timeout": "10s"}, Schedule(10.0, 10.0, 3, 10.0)),  # equal: allowed
        ({"interval": "20s"}, Schedule(20.0, 10.0, 3, 20.0)),  # retries no slower than polls
        ({"interval": "5m"}, Schedule(300.0, 10.0, 3, 30.0)),
        ({"retries": 0}, Schedule(retries=0)),
        ({"retries": 10}, Schedule(retries=10)),
    ],
)
def test_schedules_at_their_bounds(values, schedule):
    assert parse_schedule(values) == schedule


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"interval": "10s", "retry_interval": "11s"}, "retry_interval"),
        ({"interval": "10s", "timeout": "11s"}, "timeout"),
        ({"interval": "5s"}, "interval"),
        ({"retries": -1}, "retries"),
    ],
)
def test_a_schedule_fault_names_its_key(values, key):
    with pytest.raises(OptionError) as raised:
        parse_schedule(values)
    assert raised.value.key == key
    assert raised.value.hint


def test_a_retry_interval_longer_than_the_interval_says_why_it_may_not_be():
    with pytest.raises(OptionError) as raised:
        parse_schedule({"interval": "10s", "retry_interval": "11s"})
    assert raised.value.message == "retry_interval 11s is longer than interval 10s"
    assert raised.value.hint == (
        "re-checks of an unconfirmed change should come sooner than regular ones"
    )


@dataclasses.dataclass(frozen=True)
class _Picky(TcpOptions):
    def validate(self) -> None:
        raise OptionError("these options do not go together", "change one")


def test_a_fault_of_the_options_together_is_placed_at_the_target_unless_it_names_a_key():
    probe = dataclasses.replace(REGISTRY["tcp"], options=_Picky)
    options, faults = parse_options(probe, {"target": "127.0.0.1:9"})
    assert options is None
    assert [(key, error.message) for key, error in faults] == [
        ("target", "these options do not go together")
    ]


def test_the_memo_keeps_values_of_different_types_apart():
    memo, parse = ParseMemo(), integer(0, 10)
    assert memo.parse(parse, 1) == 1
    with pytest.raises(OptionError):
        memo.parse(parse, True)  # True == 1, but it is no whole number
    assert memo.schedule({"retries": 1}).retries == 1
    with pytest.raises(OptionError) as raised:
        memo.schedule({"retries": True})
    assert raised.value.key == "retries"


def test_the_memo_parses_a_schedule_it_cannot_keep():
    with pytest.raises(OptionError) as raised:
        ParseMemo().schedule({"interval": [1]})  # a list: unhashable, parsed all the same
    assert (raised.value.key, raised.value.message) == (
        "interval",
        "expected a duration, got a list",
    )
