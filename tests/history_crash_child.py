"""Writes results and events through HistoryWriter until killed, printing every acknowledged
sequence number after its commit. Run by tests/test_history.py, which SIGKILLs it mid-run."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from monitor.config.inventory import HistoryConfig
from monitor.core.events import Event, EventKind, Subject
from monitor.core.model import CheckRef, ProbeResult, Severity
from monitor.store.writer import HistoryWriter

REF = CheckRef(
    check_id="s/l/c", site_id="s", link_id="l", kind="tcp", target="127.0.0.1:9", host="127.0.0.1"
)


def main(path: str) -> None:
    def acknowledged(seq: int) -> None:
        print(seq, flush=True)

    writer = HistoryWriter(
        HistoryConfig(path=Path(path)), max_delay=0.01, on_acknowledged=acknowledged
    )
    writer.start()
    seq = 0
    while True:
        for _ in range(20):
            seq += 1
            # The sequence number travels in the row, so the test can tell which ones are there.
            if seq % 10 == 0:
                event = Event(
                    time.time() + seq,
                    Subject.CHECK,
                    REF.check_id,
                    "s",
                    EventKind.HARD,
                    "OK",
                    "CRIT",
                    f"seq {seq}",
                )
                assigned = writer.add_event(event)
            else:
                result = ProbeResult(
                    check=REF,
                    started_at=time.time(),
                    duration_ms=1.0,
                    severity=Severity.OK,
                    observations={"seq": seq},
                )
                assigned = writer.add_result(result)
            assert assigned == seq, (assigned, seq)
        time.sleep(0.005)


if __name__ == "__main__":
    main(sys.argv[1])
