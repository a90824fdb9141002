"""Benchmark: the state engine's step, alone, on a large synthetic topology.

500 sites of 2 links with 10 checks each (10,000 checks, confirmations 2), every site's first
link behind the first site's (so a change there recomputes what is unreachable), one group per
site. Six sweeps: first states, a steady one, two where every seventh check fails, two of
recovery. Prints one JSON line with the steps per second of the best of `--rounds` runs.

    python bench/state_step.py
    python bench/state_step.py --rounds 10
    python bench/state_step.py --smoke       # 5 sites, 1 round: that it runs, no figure judged
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from monitor.core.model import CheckRef, ProbeResult, Severity  # noqa: E402
from monitor.engine.restore import restore  # noqa: E402
from monitor.engine.step import step  # noqa: E402
from monitor.engine.topology import CheckPolicy, GroupPolicy, LinkPolicy, Topology  # noqa: E402

SITES, LINKS, CHECKS, SWEEPS = 500, 2, 10, 6
SMOKE_SITES = 5


def topology(sites: int) -> Topology:
    checks, links, groups = {}, {}, {}
    for s in range(sites):
        site = f"s{s}"
        link_ids = []
        for n in range(LINKS):
            link_id = f"{site}/l{n}"
            check_ids = tuple(f"{link_id}/c{c}" for c in range(CHECKS))
            checks.update({cid: CheckPolicy(cid, site, link_id, 2) for cid in check_ids})
            behind = ("s0/l0",) if s and n == 0 else ()
            links[link_id] = LinkPolicy(link_id, site, check_ids, behind)
            link_ids.append(link_id)
        groups[site] = GroupPolicy(site, site, tuple(link_ids), 1)
    return Topology(checks, links, groups)


def one_round(topo: Topology) -> tuple[int, float, int]:
    refs = [
        CheckRef(
            check_id=cid,
            site_id=p.site_id,
            link_id=p.link_id.split("/")[1],
            kind="tcp",
            target="127.0.0.1:9",
            host="127.0.0.1",
        )
        for cid, p in topo.checks.items()
    ]
    state, steps, events = restore(topo), 0, 0
    started = time.perf_counter()
    for sweep in range(SWEEPS):
        for i, ref in enumerate(refs):
            failing = sweep in (2, 3) and i % 7 == 0
            severity = Severity.CRIT if failing else Severity.OK
            result = ProbeResult(
                check=ref, started_at=sweep * 60.0 + i * 0.001, duration_ms=1.0, severity=severity
            )
            state, new = step(topo, state, result)
            steps, events = steps + 1, events + len(new)
    return steps, time.perf_counter() - started, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="5 sites, 1 round")
    args = parser.parse_args()
    rounds = 1 if args.smoke else args.rounds
    topo = topology(SMOKE_SITES if args.smoke else SITES)
    runs = [one_round(topo) for _ in range(rounds)]
    steps, best, events = min(runs, key=lambda run: run[1])
    print(
        json.dumps(
            {
                "checks": len(topo.checks),
                "steps": steps,
                "events": events,
                "best_s": round(best, 3),
                "steps_per_s": round(steps / best),
                "rounds": rounds,
            }
        )
    )


if __name__ == "__main__":
    main()
