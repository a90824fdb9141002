"""NATS in operator mode, as `nsc` sets it up, made in the test: an operator, a system account
and an account with JetStream, their JWTs preloaded in the server's memory resolver, and
`.creds` files (a user JWT and its NKey seed) for users of the account. Signed with nkeys
(Ed25519), as the JWT library of NATS signs them."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nkeys

UNLIMITED = -1
_LIMITS = {
    "subs": UNLIMITED,
    "data": UNLIMITED,
    "payload": UNLIMITED,
    "imports": UNLIMITED,
    "exports": UNLIMITED,
    "wildcards": True,
    "conn": UNLIMITED,
    "leaf": UNLIMITED,
}
_USER_LIMITS = {"subs": UNLIMITED, "data": UNLIMITED, "payload": UNLIMITED}  # 0 is none
# An account's JetStream is on when its storage limits are not zero.
_JETSTREAM = {"mem_storage": UNLIMITED, "disk_storage": UNLIMITED, "streams": UNLIMITED}


def new_key(prefix: int) -> tuple[bytes, Any]:
    """A new NKey of the kind `prefix` names (nkeys.PREFIX_BYTE_...): its seed, its key pair."""
    seed = nkeys.encode_seed(os.urandom(32), prefix)
    return seed, nkeys.from_seed(seed)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _public(key: Any) -> str:
    return str(key.public_key.decode())


def _jwt(signer: Any, subject: Any, name: str, nats: dict[str, Any]) -> str:
    claims: dict[str, Any] = {
        "iat": int(time.time()),
        "iss": _public(signer),
        "sub": _public(subject),
        "name": name,
        "nats": {**nats, "version": 2},
    }
    digest = hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest()
    claims["jti"] = base64.b32encode(digest).rstrip(b"=").decode()
    head = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(signer.sign(f'{head}.{body}'.encode()))}"


@dataclass
class Operator:
    """An operator with one account for commwatch; `config` is the server's part of it."""

    folder: Path

    def __post_init__(self) -> None:
        _, self._operator = new_key(nkeys.PREFIX_BYTE_OPERATOR)
        _, self._account = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
        _, system = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
        operator_jwt = _jwt(self._operator, self._operator, "commwatch-test", {"type": "operator"})
        account_jwt = _jwt(
            self._operator,
            self._account,
            "commwatch",
            {"type": "account", "limits": {**_LIMITS, **_JETSTREAM}},
        )
        system_jwt = _jwt(self._operator, system, "SYS", {"type": "account", "limits": _LIMITS})
        self.config = (
            f"operator: {operator_jwt}\n"
            f"system_account: {_public(system)}\n"
            "resolver: MEMORY\n"
            f"resolver_preload: {{ {_public(self._account)}: {account_jwt}, "
            f"{_public(system)}: {system_jwt} }}"
        )

    def creds(self, name: str) -> Path:
        """A `.creds` file for a new user `name` of the account, as `nsc` writes one."""
        seed, user = new_key(nkeys.PREFIX_BYTE_USER)
        user_jwt = _jwt(
            self._account,
            user,
            name,
            {"type": "user", "pub": {}, "sub": {}, **_USER_LIMITS},
        )
        path = self.folder / f"{name}.creds"
        path.write_text(
            "-----BEGIN NATS USER JWT-----\n"
            f"{user_jwt}\n"
            "------END NATS USER JWT------\n\n"
            "-----BEGIN USER NKEY SEED-----\n"
            f"{seed.decode()}\n"
            "------END USER NKEY SEED------\n"
        )
        path.chmod(0o600)
        return path
