"""Where people read about shared risks by design: `commwatch check` (findings, not faults) and
`commwatch report` (its diversity section, table and JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from monitor.store.history import HistoryStore
from tests.conftest import REPO
from tests.test_report import commwatch

REPORT_SCHEMA = json.loads((REPO / "monitor/output/schema/report.schema.json").read_text())

INVENTORY = """\
sites:
  - id: north
    links:
      - id: fibre
        risks: [carrier:att, conduit:main-st]
        checks: [{id: router, kind: tcp, target: "127.0.0.1:9"}]
      - id: lte
        role: backup
        risks: [carrier:att]
        checks: [{id: router, kind: tcp, target: "127.0.0.1:9"}]
  - id: south
    min_up: 2
    links:
      - id: a
        risks: [co:downtown, power:grid-a]
        checks: [{id: router, kind: tcp, target: "127.0.0.1:9"}]
      - id: b
        risks: [co:downtown, power:grid-a]
        checks: [{id: router, kind: tcp, target: "127.0.0.1:9"}]
      - id: c
        risks: [conduit:Main St]
        checks: [{id: router, kind: tcp, target: "127.0.0.1:9"}]
  - id: ridge
    links:
      - id: microwave
        checks: [{id: router, kind: tcp, target: "127.0.0.1:9"}]
      - id: satellite
        checks: [{id: router, kind: tcp, target: "127.0.0.1:9"}]
groups:
  - id: metro
    links: [north/fibre, south/c, ridge/microwave]
    min_up: 2
"""


def inventory(folder: Path, text: str = INVENTORY) -> Path:
    path = folder / "inventory.yaml"
    path.write_text(text)
    return path


def test_check_names_every_single_shared_risk_as_a_finding_and_the_inventory_stays_valid(
    tmp_path,
):
    done = commwatch("check", str(inventory(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[3:] == [
        "  shared risks: 3 findings",
        "    risks conduit:main-st and conduit:Main St differ only in case, spaces, '-' or '_': "
        "each counts as a risk of its own; write them alike if they are one",
        "    site north: links fibre and lte both ride carrier:att; losing it leaves 0 of min_up 1",
        "    site south: links a and b both ride co:downtown and power:grid-a; losing any one of "
        "them leaves 1 of min_up 2",
    ]
    assert done.stderr == ""


def test_check_of_an_inventory_without_risks_says_what_it_always_said(tmp_path):
    path = inventory(tmp_path, INVENTORY.replace("risks:", "tags:"))
    done = commwatch("check", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{path}: valid",
        "  3 sites, 7 links (1 backup, 6 primary), 7 checks",
        "      7 tcp",
    ]


def test_check_of_shared_risks_that_take_nothing_down_says_so(tmp_path):
    diverse = INVENTORY.replace("risks: [carrier:att]\n", "risks: [carrier:vz]\n").replace(
        "[co:downtown, power:grid-a]", "[co:uptown]", 1
    )
    done = commwatch("check", str(inventory(tmp_path, diverse.replace("Main St", "elm-st"))))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[3:] == ["  shared risks: no findings"]


def test_the_report_has_a_diversity_section_per_group(tmp_path):
    path = inventory(tmp_path)
    db = tmp_path / "history.sqlite3"
    HistoryStore(db, create=True).close()
    table = commwatch("report", str(path), "--db", str(db))
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[lines.index("Diversity (the risks the inventory declares, every link up):") :] == [
        "Diversity (the risks the inventory declares, every link up):",
        "  site north: links fibre and lte both ride carrier:att; losing it leaves 0 of min_up 1",
        "  site south: links a and b both ride co:downtown and power:grid-a; losing any one of "
        "them leaves 1 of min_up 2",
        "  no single shared risk takes them below min_up: group metro",
        "  no risks declared, nothing known: site ridge",
    ]
    done = commwatch("report", str(path), "--db", str(db), "--format", "json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    jsonschema.Draft202012Validator(REPORT_SCHEMA).validate(document)
    diversity = {g["group_id"]: g for g in document["diversity"]}
    assert diversity["north"] == {
        "group_id": "north",
        "name": "north",
        "site_id": "north",
        "links": ["north/fibre", "north/lte"],
        "min_up": 1,
        "risks_declared": True,
        "exposures": [{"risks": ["carrier:att"], "links": ["north/fibre", "north/lte"], "left": 0}],
    }
    assert diversity["south"]["exposures"] == [
        {"risks": ["co:downtown", "power:grid-a"], "links": ["south/a", "south/b"], "left": 1}
    ]
    assert (diversity["metro"]["risks_declared"], diversity["metro"]["exposures"]) == (True, [])
    assert (diversity["ridge"]["risks_declared"], diversity["ridge"]["exposures"]) == (False, [])
    # Without the inventory the history cannot say: null, not an empty list.
    bare = json.loads(commwatch("report", "--db", str(db), "--format", "json").stdout)
    jsonschema.Draft202012Validator(REPORT_SCHEMA).validate(bare)
    assert bare["diversity"] is None


def test_the_report_of_an_inventory_without_risks_says_nothing_is_known(tmp_path):
    path = inventory(tmp_path, INVENTORY.replace("risks:", "tags:"))
    db = tmp_path / "history.sqlite3"
    HistoryStore(db, create=True).close()
    table = commwatch("report", str(path), "--db", str(db))
    assert table.stdout.splitlines()[-1] == (
        "Diversity: no risks declared (`risks:` on sites and links): nothing is known."
    )
