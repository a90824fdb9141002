"""What an SNMP exchange that did not answer cleanly means, as an exception a person can act on:
a report PDU (wrong passphrase, unknown user), an error status, silence after discovery.
"""

from __future__ import annotations

from typing import Any

from pysnmp.proto import errind

from monitor.core.errors import AuthFailure, ConfigFailure, ProtocolFailure
from probes.support.snmp_credentials import Credentials
from probes.support.snmp_values import VarBinds

Outcome = tuple[Any, Any, Any, VarBinds]  # pysnmp's (indication, status, index, varbinds)


def unanswered(label: str, credentials: Credentials) -> Exception:
    """The agent answered engine-id discovery (so it is up) but not our request."""
    if credentials.priv_protocol:
        return AuthFailure(
            f"{label} answers SNMPv3 engine discovery but not user "
            f"{credentials.user!r} at authPriv: wrong privacy passphrase or protocol?"
            " (agents silently drop requests they cannot decrypt)"
        )
    return TimeoutError(
        f"{label} answers SNMPv3 engine discovery but not the request of user {credentials.user!r}"
    )


# pysnmp's error indications for SNMPv3 report PDUs, and what they tell the engineer.
_REPORTS: tuple[tuple[type, str], ...] = (
    (errind.UnknownUserName, "unknown user {user} (usmStatsUnknownUserNames)"),
    (
        errind.WrongDigest,
        "wrong authentication passphrase or protocol for user {user} (usmStatsWrongDigests)",
    ),
    (
        errind.DecryptionError,
        "wrong privacy passphrase or protocol for user {user} (usmStatsDecryptionErrors)",
    ),
    (
        errind.UnsupportedSecurityLevel,
        "user {user} may not use security level {level} (usmStatsUnsupportedSecLevels)",
    ),
    (
        errind.NotInTimeWindow,
        "the agent keeps rejecting our messages as outside its time window"
        " (usmStatsNotInTimeWindows): its engine boots/time are inconsistent",
    ),
)


def raise_for(
    outcome: Outcome,
    label: str,
    silence: Exception | None,
    credentials: Credentials | None = None,
) -> None:
    indication, status, index, varbinds = outcome
    if indication is None:
        if status:
            _raise_for_status(int(status), int(index), varbinds, label)
        return
    if isinstance(indication, errind.RequestTimedOut) and silence is not None:
        raise silence
    user = repr(credentials.user) if credentials is not None else "?"
    level = credentials.level if credentials is not None else "?"
    for kind, message in _REPORTS:
        if isinstance(indication, kind):
            raise AuthFailure(f"{label}: " + message.format(user=user, level=level))
    if isinstance(indication, errind.UnknownSecurityName | errind.UnsupportedSecurityModel):
        raise ConfigFailure(f"pysnmp cannot use these credentials: {indication}")
    raise ProtocolFailure(f"{label}: {indication}")


def _raise_for_status(status: int, index: int, varbinds: VarBinds, label: str) -> None:
    name = _ERROR_STATUS.get(status, f"error status {status}")
    where = f" at {varbinds[index - 1][0]}" if 0 < index <= len(varbinds) else ""
    if name == "authorizationError":
        raise AuthFailure(f"{label} denied access{where} (authorizationError)")
    if name == "tooBig":
        raise ProtocolFailure(f"{label}: the answer is too big for one message (tooBig)")
    raise ProtocolFailure(f"{label} answered {name}{where}")


# RFC 3416 error-status values.
_ERROR_STATUS = dict(
    enumerate(
        [
            "noError",
            "tooBig",
            "noSuchName",
            "badValue",
            "readOnly",
            "genErr",
            "noAccess",
            "wrongType",
            "wrongLength",
            "wrongEncoding",
            "wrongValue",
            "noCreation",
            "inconsistentValue",
            "resourceUnavailable",
            "commitFailed",
            "undoFailed",
            "authorizationError",
            "notWritable",
            "inconsistentName",
        ]
    )
)
