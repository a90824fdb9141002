"""The parts of DNSSEC validation that need no network: trust anchor files (and the root's,
shipped in docs/), the option rules, the KeyTrap bound on verifications, and denial proofs
judged on records of zones signed here."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dns.dnssec
import dns.flags
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from monitor.config.checks import adhoc_check
from monitor.config.inventory import InventoryErrors
from monitor.config.loader import load_inventory
from monitor.core.options import OptionError
from probes.support import dnssec_denial, dnssec_verify
from probes.support.dnssec_anchor import load_anchors, trust_anchor_file
from tests.conftest import REPO
from tests.peers.dnssec_peers import CHILD, HASHED, Nsec3, new_key, sign, world, zone_from

# The root KSKs as IANA publishes them (root-anchors.xml, and the root zone's DNSKEY RRset).
ROOT_KSKS = {
    20326: "257 3 8 AwEAAaz/tAm8yTn4Mfeh5eyI96WSVexTBAvkMgJzkKTOiW1vkIbzxeF3+/4RgWOq7HrxRixHlFlE"
    "xOLAJr5emLvN7SWXgnLh4+B5xQlNVz8Og8kvArMtNROxVQuCaSnIDdD5LKyWbRd2n9WGe2R8PzgCmr3EgVLrjyBx"
    "WezF0jLHwVN8efS3rCj/EWgvIWgb9tarpVUDK/b58Da+sqqls3eNbuv7pr+eoZG+SrDK6nWeL3c6H5Apxz7LjVc1"
    "uTIdsIXxuOLYA4/ilBmSVIzuDWfdRUfhHdY6+cn8HFRm+2hM8AnXGXws9555KrUB5qihylGa8subX2Nn6UwNR1Ak"
    "UTV74bU=",
    38696: "257 3 8 AwEAAa96jeuknZlaeSrvyAJj6ZHv28hhOKkx3rLGXVaC6rXTsDc449/cidltpkyGwCJNnOAlFNKF"
    "2jBosZBU5eeHspaQWOmOElZsjICMQMC3aeHbGiShvZsx4wMYSjH8e7Vrhbu6irwCzVBApESjbUdpWWmEnhathWu1"
    "jo+siFUiRAAxm9qyJNg/wOZqqzL/dL/q8PkcRU5oUKEpUge71M3ej2/7CPqpdVwuMoTvoB+ZOT4YeGyxMvHmbrxl"
    "FzGOHOijtzN+u1TQNatX2XBuzZNQ1K+s2CXkPIZo7s6JgZyvaBevYtxPvYLw4z9mR7K2vaF18UYH9Z9GNUUeayff"
    "KC73PYc=",
}
DS = ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D"


def write(tmp_path: Path, text: str, name: str = "anchors.zone") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --- the shipped root anchor -----------------------------------------------------------------


def test_the_shipped_root_anchors_are_the_digests_of_ianas_root_ksks() -> None:
    anchors = load_anchors(str(REPO / "docs/root-anchors.zone"))
    (root,) = anchors.zones
    assert root.name == dns.name.root
    assert root.dnskeys == ()
    assert {ds.key_tag for ds in root.ds} == set(ROOT_KSKS)
    for ds in root.ds:
        key = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DNSKEY, ROOT_KSKS[ds.key_tag])
        assert key.key_id() == ds.key_tag
        assert dns.dnssec.make_ds(dns.name.root, key, "SHA256").digest == ds.digest


# --- trust anchor files ----------------------------------------------------------------------


def test_unbound_style_files_read_with_comments_parentheses_and_directives(
    tmp_path: Path,
) -> None:
    key = new_key().dnskey.to_text()
    flags, protocol, algorithm, material = key.split(" ", 3)
    revoked = new_key(flags=257 | 0x80).dnskey.to_text()
    text = (
        ";;id: cw.test. 1\n"
        "$ORIGIN cw.test.\n"
        "$TTL 3600\n"
        f"@ IN DNSKEY {flags} {protocol} ( {algorithm}\n"
        f"      {material} ) ;{{id = 1 (ksk)}} ;;state=2 [  VALID  ] ;;count=0\n"
        f"  IN DNSKEY {revoked} ;;state=4 [ REVOKED ]\n"
        f"sub IN DS 60485 13 2 ( {'00' * 32} )\n"
        f"{DS}\n"
    )
    anchors = load_anchors(write(tmp_path, text))
    zones = {zone.name.to_text(): zone for zone in anchors.zones}
    assert set(zones) == {"cw.test.", "sub.cw.test.", "."}
    assert [k.to_text() for k in zones["cw.test."].dnskeys] == [
        key
    ]  # the revoked one anchors nothing
    assert anchors.covering(dns.name.from_text("www.sub.cw.test.")).name.to_text() == "sub.cw.test."
    assert anchors.covering(dns.name.from_text("www.example.net.")).name == dns.name.root


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cw.test. IN A 192.0.2.1\n", ":1: a A record is not a trust anchor"),
        ("\n; c\n. IN DS 20326 8 2 ABCD\n", ":3: digest length inconsistent with digest type"),
        (". IN DS 20326 8 2 ( E06D\n", ":1: '(' is never closed"),
        ("$INCLUDE /etc/passwd\n", ":1: $INCLUDE is not read in a trust anchor file"),
        ("$TTL 1h\n", ":1: $TTL '1h' is not a number of seconds"),
        ("  IN DS 20326 8 2 E06D\n", ":1: the first record has no owner"),
        ("; nothing\n", " holds no DS or DNSKEY record"),
        ("cw.test. IN DNSKEY 0 3 13 AAAA\n", ":1: DNSKEY 781 is not a zone key (flags 0)"),
    ],
)
def test_bad_anchor_files_say_where_and_why(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(OptionError) as caught:
        trust_anchor_file(path)
    assert f"{path}{message}" in str(caught.value)


def test_a_binary_or_missing_anchor_file_is_an_error(tmp_path: Path) -> None:
    binary = tmp_path / "anchor.bin"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(OptionError, match="is not UTF-8 text"):
        trust_anchor_file(str(binary))
    with pytest.raises(OptionError, match="does not exist or is not readable"):
        trust_anchor_file(str(tmp_path / "missing.zone"))


def test_an_edited_anchor_file_is_read_again(tmp_path: Path) -> None:
    path = write(tmp_path, f"{DS}\n")
    assert load_anchors(path).names() == "."
    write(tmp_path, "cw.test. IN DS 20326 8 2 " + "00" * 32 + "\n")
    assert load_anchors(path).names() == "cw.test."


# --- option rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "key", "message"),
    [
        ({"dnssec": True}, "dnssec", "dnssec: true needs a trust_anchor"),
        ({"trust_anchor": "ANCHOR"}, "trust_anchor", "trust_anchor is set but dnssec is not"),
        (
            {"dnssec": True, "trust_anchor": "ANCHOR", "rrsig_warn": 1, "rrsig_crit": 3},
            "rrsig_crit",
            "rrsig_crit is above rrsig_warn",
        ),
        (
            {"dnssec": True, "trust_anchor": "ANCHOR", "target": "www.example.net"},
            "trust_anchor",
            "the trust anchor file names cw.test., which does not cover www.example.net.",
        ),
        (
            {"dnssec": True, "trust_anchor": "ANCHOR", "dnssec_insecure": "fine"},
            "dnssec_insecure",
            "'fine' is not one of the choices (use one of: ok, warn, crit)",
        ),
    ],
)
def test_dnssec_options_are_refused_with_a_hint(
    tmp_path: Path, values: dict[str, Any], key: str, message: str
) -> None:
    anchor = write(tmp_path, "cw.test. IN DS 20326 8 2 " + "00" * 32 + "\n")
    values = {k: anchor if v == "ANCHOR" else v for k, v in values.items()}
    with pytest.raises(OptionError) as caught:
        adhoc_check("dns", {"target": "www.cw.test", "server": "127.0.0.1", **values})
    assert caught.value.key == key
    assert str(caught.value).startswith(message)


def test_only_a_dnssec_check_asks_with_the_do_bit_and_a_1232_byte_payload(
    tmp_path: Path,
) -> None:
    from probes.dns import _query

    anchor = write(tmp_path, "cw.test. IN DS 20326 8 2 " + "00" * 32 + "\n")
    base = {"target": "www.cw.test", "server": "127.0.0.1"}
    plain = _query(adhoc_check("dns", base).options)
    signed = _query(adhoc_check("dns", {**base, "dnssec": True, "trust_anchor": anchor}).options)
    assert plain.edns == -1
    assert signed.edns == 0
    assert signed.ednsflags & dns.flags.DO
    assert signed.payload == 1232
    assert not signed.flags & dns.flags.CD  # the answer as clients get it; only the chain sets CD


# --- the KeyTrap bound -----------------------------------------------------------------------


def _colliding_keys(tag: int, algorithm: int, count: int) -> list[Any]:
    """DNSKEYs of random material whose key tag is `tag`: what a KeyTrap zone publishes."""
    found: list[Any] = []
    serial = 0
    while len(found) < count:
        serial += 1
        material = serial.to_bytes(62, "big") + b"\x00\x00"
        key = dns.rdata.from_wire(
            dns.rdataclass.IN,
            dns.rdatatype.DNSKEY,
            b"\x01\x01\x03" + bytes([algorithm]) + material,
            0,
            4 + len(material),
        )
        # The tag is a 16-bit sum of the rdata: the last two bytes set it exactly.
        missing = (tag - key.key_id()) % 0x10000
        patched = material[:-2] + missing.to_bytes(2, "big")
        key = key.replace(key=patched)
        if key.key_id() == tag:
            found.append(key)
    return found


def test_a_keytrap_answer_costs_a_bounded_number_of_verifications() -> None:
    real = new_key()
    rrset = dns.rrset.from_text("www.cw.test.", 300, "IN", "A", "192.0.2.10")
    now = time.time()
    signature = dns.dnssec.sign(
        rrset, real.private, dns.name.from_text("cw.test."), real.dnskey, lifetime=3600
    )
    keys = _colliding_keys(signature.key_tag, signature.algorithm, 50)
    forged = [signature.replace(signature=bytes([n]) * 64) for n in range(1, 51)]
    budget = dnssec_verify.Budget()
    checked = dnssec_verify.check(rrset, forged, dns.name.from_text("cw.test."), keys, budget, now)
    assert not checked.valid
    assert checked.reason == dnssec_verify.BAD
    spent = dnssec_verify.MAX_VERIFICATIONS - budget.left
    assert spent == dnssec_verify.MAX_SIGNATURES_PER_RRSET * dnssec_verify.MAX_KEYS_PER_SIGNATURE
    # 50 keys by 50 signatures would have been 2,500 verifications. Two such RRsets use up
    # the check's budget, and the third is refused without a verification.
    for expected in (dnssec_verify.BAD, dnssec_verify.TOO_MANY):
        again = dnssec_verify.check(
            rrset, forged, dns.name.from_text("cw.test."), keys, budget, now
        )
        assert again.reason == expected
    assert budget.left < 0
    # The genuine signature among the keys' collisions still verifies when tried in time.
    fresh = dnssec_verify.check(
        rrset,
        [signature],
        dns.name.from_text("cw.test."),
        [real.dnskey],
        dnssec_verify.Budget(),
        now,
    )
    assert fresh.valid


# --- denial proofs on records signed here ----------------------------------------------------


def _authority(zone: Any, *owners: str, rdtype: str) -> list[dns.rrset.RRset]:
    kind = dns.rdatatype.from_text(rdtype)
    found = []
    for owner in owners:
        name = dns.name.from_text(owner, zone.origin)
        rds = zone.find_rdataset(name, kind)
        found.append(dns.rrset.from_rdata_list(name, rds.ttl, list(rds)))
    return found


def _nsec3_names(zone: Any, params: Nsec3, *names: str) -> list[str]:
    return [params.digest(dns.name.from_text(name, zone.origin)) for name in names]


def _nsec3_covering(zone: Any, digest: str) -> str:
    owners = sorted(
        n.labels[0].decode().upper()
        for n, node in zone.nodes.items()
        if node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.NSEC3)
    )
    before = [o for o in owners if o < digest]
    return before[-1] if before else owners[-1]


def _spread_nsec3_zone() -> tuple[Any, str, str, str]:
    """An NSEC3 zone whose apex, the record covering missing.hashed.cw.test and the record
    covering *.hashed.cw.test are three different records (the salt decides the order)."""
    key = new_key()
    records = ["www A 192.0.2.30", "a A 192.0.2.31", "b A 192.0.2.32", "c A 192.0.2.33"]
    for salt in range(256):
        params = Nsec3(salt=bytes([salt]))
        zone = sign(zone_from(HASHED, records), [key], nsec3=params)
        (apex,) = _nsec3_names(zone, params, "@")
        closer = _nsec3_covering(zone, params.digest(dns.name.from_text(f"missing.{HASHED}")))
        wildcard = _nsec3_covering(zone, params.digest(dns.name.from_text(f"*.{HASHED}")))
        if len({apex, closer, wildcard}) == 3:
            return zone, apex, closer, wildcard
    raise AssertionError("no salt spreads the proof over three records")


@pytest.mark.parametrize(
    ("left_out", "problem"),
    [
        (None, ""),
        ("apex", "no NSEC3 record matches an ancestor of missing.hashed.cw.test"),
        ("closer", "no NSEC3 record covers missing.hashed.cw.test"),
        ("wildcard", "no NSEC3 record proves that *.hashed.cw.test does not exist"),
    ],
)
def test_nsec3_nxdomain_needs_the_encloser_the_next_closer_and_the_wildcard(
    left_out: str | None, problem: str
) -> None:
    zone, *parts = _spread_nsec3_zone()
    named = dict(zip(("apex", "closer", "wildcard"), parts, strict=True))
    kept = [digest for role, digest in named.items() if role != left_out]
    qname = dns.name.from_text(f"missing.{HASHED}")
    records = _authority(zone, *kept, rdtype="NSEC3")
    proof = dnssec_denial.deny(qname, dns.rdatatype.A, zone.origin, [], records)
    assert proof.problem == problem
    assert proof.proven == ("" if problem else dnssec_denial.NXDOMAIN)


def test_an_nsec_at_a_delegation_cannot_deny_names_below_it() -> None:
    built = world()
    parent = built.parent
    delegation = _authority(parent, "plain", rdtype="NSEC")
    below = dns.name.from_text("www.plain.cw.test.")
    proof = dnssec_denial.deny(below, dns.rdatatype.A, parent.origin, delegation, [])
    assert proof.proven == ""
    assert proof.problem == "the NSEC at plain.cw.test is a delegation's, not proof"


def test_nsec_nodata_refuses_a_bitmap_that_lists_the_type() -> None:
    built = world()
    at_www = _authority(built.child, "www", rdtype="NSEC")
    name = dns.name.from_text(f"www.{CHILD}")
    proof = dnssec_denial.deny(name, dns.rdatatype.A, built.child.origin, at_www, [])
    assert proof.problem == "the NSEC at www.sub.cw.test says it has A"


# --- the inventory ---------------------------------------------------------------------------

INVENTORY = """\
sites:
  - id: s
    links:
      - id: l
        checks:
          - id: cad-name
            kind: dns
            target: www.cw.test
            server: 127.0.0.1:5353
            dnssec: true
            trust_anchor: ANCHOR
            rrsig_warn: 4
"""


def test_an_inventory_names_the_anchor_relative_to_its_folder(tmp_path: Path) -> None:
    (tmp_path / "anchors").mkdir()
    write(tmp_path / "anchors", "cw.test. IN DS 20326 8 2 " + "00" * 32 + "\n", "cw.test.ds")
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY.replace("ANCHOR", "anchors/cw.test.ds"))
    (check,) = load_inventory(path).checks
    assert check.options.trust_anchor == str(tmp_path / "anchors/cw.test.ds")
    assert (check.options.rrsig_warn, check.options.rrsig_crit) == (4.0, 1.0)


def test_a_bad_anchor_file_is_placed_in_the_inventory_and_in_the_file(tmp_path: Path) -> None:
    anchor = write(tmp_path, "cw.test. IN DS 20326 8 2 ABCD\n", "cw.test.ds")
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY.replace("ANCHOR", "cw.test.ds"))
    with pytest.raises(InventoryErrors) as caught:
        load_inventory(path)
    (error,) = (str(e) for e in caught.value.errors)
    assert error.startswith(f"{path}:11:27: ")
    assert f"{anchor}:1: digest length inconsistent with digest type" in error


def test_a_dns_check_loads_dnssec_code_and_cryptography_only_to_validate(tmp_path: Path) -> None:
    anchor = write(tmp_path, "cw.test. IN DS 20326 8 2 " + "00" * 32 + "\n")
    script = (
        "import sys\n"
        "from monitor.config.checks import adhoc_check\n"
        "base = {'target': 'www.cw.test', 'server': '127.0.0.1'}\n"
        "adhoc_check('dns', base)\n"
        f"adhoc_check('dns', {{**base, 'dnssec': True, 'trust_anchor': {anchor!r}}})\n"
        "print(sorted(m for m in ('cryptography', 'dns.dnssec', 'probes.support.dnssec_chain')"
        " if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("owners", "proven", "problem"),
    [
        (("@", "a.b.c"), dnssec_denial.NXDOMAIN, ""),
        (("a.b.c",), "", "no NSEC record proves that *.sub.cw.test does not exist"),
        (("@",), "", "no NSEC record matches or covers missing.sub.cw.test"),
    ],
)
def test_nsec_nxdomain_needs_the_name_and_the_wildcard_covered(
    owners: tuple[str, ...], proven: str, problem: str
) -> None:
    # In canonical order missing.sub.cw.test falls after a.b.c, *.sub.cw.test after the apex.
    built = world()
    records = _authority(built.child, *owners, rdtype="NSEC")
    name = dns.name.from_text(f"missing.{CHILD}")
    proof = dnssec_denial.deny(name, dns.rdatatype.A, built.child.origin, records, [])
    assert (proof.proven, proof.problem) == (proven, problem)
