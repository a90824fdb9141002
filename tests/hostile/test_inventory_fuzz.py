"""A seeded mutation fuzzer over the shipped inventory: every mutant loads, or is refused with
exit 2 and nothing but `file:line:col: ...` lines; never a traceback, never unbounded time or
memory.

The mutants are made here and checked by the real `commwatch check` code in one child process
(one interpreter start for all of them) under an address-space limit, which reports each
outcome as a JSON line. A failure names the seed and the mutations, so

    python -m tests.hostile.test_inventory_fuzz SEED COUNT

writes the same mutants again (into ./fuzz-SEED/) to look at.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from monitor.lab.lab import SNMP_ENV
from tests.conftest import REPO

SEED = 20260509
MUTANTS = 300
MUTANT_SECONDS = 2.0  # each, generous: the slowest real one is the 1M-value alias bomb
CHILD_SECONDS = 120.0
ADDRESS_SPACE = 2 << 30  # the child's hard limit: a runaway allocation is a MemoryError
PEAK_RSS_KIB = 400 * 1024
LOCATED = re.compile(r"^[^\n]+:\d+:\d+: \S")
# The secrets the shipped inventory's commented-out credentials name, so that they load too.
SECRET_ENV = {  # what the demo lab's env file provides
    SNMP_ENV.auth_passphrase: "fuzz-auth-passphrase",
    SNMP_ENV.priv_passphrase: "fuzz-priv-passphrase",
    SNMP_ENV.community: "fuzz-community",
}


def base_text() -> str:
    """The shipped inventory, its CA file named absolutely (the mutants live in a temporary
    folder)."""
    text = (REPO / "inventory.yaml").read_text()
    return text.replace("monitor/lab/lab-ca.pem", str(REPO / "monitor/lab/lab-ca.pem"))


# --- mutations: each takes the text and the generator, returns new bytes-able text ----------

ODD_BYTES = [b"\x00", b"\x1b", b"\x7f", b"\xff", b"\xc3", b"\t", b"\r", b"\n", b"\x85"]
PUNCTUATION = list(":-[]{},&*!|>'\"#%@`?<= ")
VALUES = [
    "[]",
    "{}",
    "~",
    "''",
    "true",
    "no",
    "-1",
    "0",
    "1e999",
    ".nan",
    "-.inf",
    "0x7fffffffffffffff",
    "0b101",
    "1:30:00",
    "2026-02-30",
    "0000-01-01",
    "2026-12-01 01:00:00 +25:00",
    "=",
    "<<",
    '"\\e[31mred\\e[0m"',
    '"\\u202e\\u2066x"',
    '"\\ud800"',
    "[a, [b, {c: d}]]",
    "{id: x, id: y}",
    "'" + "w" * 9000 + "'",
    "9" * 5000,
    "1" + "0" * 70,
    "1." + "5" * 400,
]
TAGS = [
    "!!python/object:os.system ",
    "!!python/name:builtins.eval ",
    "!!binary ",
    "!!set ",
    "!!omap ",
    "!!int ",
    "!!float ",
    "!!bool ",
    "!!null ",
    "!!timestamp ",
    "!!str ",
    "!!map ",
    "!!seq ",
    "!!merge ",
    "!custom ",
    "! ",
    "!<tag:example.com,2026:x> ",
]
UNICODE = ["\u202e", "\ufeff", "\u200b", "\u2028", "\u00a0", "\uff1a", "e\u0301", "\U0001f4e1"]


def _lines(text: str) -> list[str]:
    return text.split("\n")


def flip_byte(text: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(text))
    new = rng.choice([*ODD_BYTES, *(c.encode() for c in PUNCTUATION)])
    return text[:at] + new + text[at + 1 :]


def delete_span(text: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(text))
    return text[:at] + text[at + rng.randint(1, 200) :]


def duplicate_lines(text: bytes, rng: random.Random) -> bytes:
    lines = text.split(b"\n")
    at = rng.randrange(len(lines))
    block = lines[at : at + rng.randint(1, 6)]
    return b"\n".join(lines[: at + len(block)] + block + lines[at + len(block) :])


def reindent(text: bytes, rng: random.Random) -> bytes:
    lines = text.split(b"\n")
    at = rng.randrange(len(lines))
    if rng.random() < 0.5:
        lines[at] = b" " * rng.randint(1, 5) + lines[at]
    else:
        lines[at] = lines[at][rng.randint(1, 4) :]
    return b"\n".join(lines)


def _value_positions(text: bytes) -> list[int]:
    """Offsets just after `key: ` where a value starts."""
    # The lookbehind starts a try only where a word starts: linear over a 100,000-digit run.
    return [m.end() for m in re.finditer(rb"(?<![\w-])[\w-]+: (?=\S)", text)]


def swap_type(text: bytes, rng: random.Random) -> bytes:
    at = rng.choice(_value_positions(text))
    end = text.find(b"\n", at)
    end = len(text) if end < 0 else end
    return text[:at] + rng.choice(VALUES).encode() + text[end:]


def insert_tag(text: bytes, rng: random.Random) -> bytes:
    at = rng.choice(_value_positions(text))
    return text[:at] + rng.choice(TAGS).encode() + text[at:]


def alias_games(text: bytes, rng: random.Random) -> bytes:
    positions = _value_positions(text)
    first, second = sorted(rng.sample(positions, 2))
    kind = rng.randrange(5)
    if kind == 0:  # an anchor and a later alias replacing a value
        end = text.find(b"\n", second)
        return text[:first] + b"&f " + text[first:second] + b"*f" + text[end:]
    if kind == 1:  # an alias to nowhere
        return text[:first] + b"*nowhere " + text[first:]
    if kind == 2:  # a merge of an anchored mapping into some mapping
        line_start = text.rfind(b"\n", 0, second) + 1
        indent = re.match(rb" *(- )?", text[line_start:]).end()
        merge = b" " * indent + b"<<: *shared\n"
        prefix = b"x-shared: &shared {interval: 5m, retries: 1, timeout: 3s}\n"
        return prefix + text[:line_start] + merge + text[line_start:]
    if kind == 3:  # a billion laughs
        bomb = [b'x-l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        bomb += [
            b"x-l%d: &l%d [%s]" % (i, i, b",".join([b"*l%d" % (i - 1)] * 9)) for i in range(1, 10)
        ]
        return b"\n".join(bomb) + b"\n" + text
    # deep nesting
    depth = rng.choice([70, 500, 5000])
    return text[:first] + b"[" * depth + b"]" * depth + text[text.find(b"\n", first) :]


def odd_number(text: bytes, rng: random.Random) -> bytes:
    """A run of digits anywhere (a value, a port in a target, an address) made huge or made of
    digits Python's str.isdigit() takes but int() does not (superscripts, Arabic-Indic)."""
    numbers = [m.span() for m in re.finditer(rb"\d+", text)]
    start, end = rng.choice(numbers)
    new = rng.choice([b"7" * 4300, b"7" * 4301, b"7" * 100_000, "²".encode(), "٨٠".encode()])
    return text[:start] + new + text[end:]


def unicode_oddity(text: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(text))
    while at and (text[at] & 0xC0) == 0x80:  # not inside a UTF-8 sequence
        at -= 1
    return text[:at] + rng.choice(UNICODE).encode() + text[at:]


MUTATIONS: list[Callable[[bytes, random.Random], bytes]] = [
    flip_byte,
    delete_span,
    duplicate_lines,
    reindent,
    swap_type,
    insert_tag,
    alias_games,
    odd_number,
    unicode_oddity,
]


@dataclass(frozen=True)
class Mutant:
    index: int
    mutations: tuple[str, ...]
    text: bytes


def mutants(seed: int, count: int) -> list[Mutant]:
    rng = random.Random(seed)
    base = base_text().encode()
    made = []
    for index in range(count):
        text, names = base, []
        for _ in range(rng.choice([1, 1, 2, 3])):
            mutation = rng.choice(MUTATIONS)
            text = mutation(text, rng)
            names.append(mutation.__name__)
        made.append(Mutant(index, tuple(names), text))
    return made


# --- the child: the real `commwatch check`, once per mutant ---------------------------------


def check_all(paths: list[str]) -> None:
    """Run `commwatch check` on each path in this process; one JSON line per path."""
    from monitor.cli.main import main

    for path in paths:
        out, err = io.StringIO(), io.StringIO()
        started = time.perf_counter()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code: int | str = main(["check", path])
        except BaseException as exc:  # the finding is that it escaped
            import traceback

            code = "escaped"
            err.write("".join(traceback.format_exception(exc)))
        record = {
            "path": path,
            "code": code,
            "stdout": out.getvalue(),
            "stderr": err.getvalue(),
            "seconds": time.perf_counter() - started,
            "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        }
        sys.__stdout__.write(json.dumps(record) + "\n")
        sys.__stdout__.flush()


def _limit_child() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def test_every_mutant_loads_or_is_refused_with_places(tmp_path):
    made = mutants(SEED, MUTANTS)
    paths = []
    for mutant in made:
        path = tmp_path / f"mutant-{mutant.index:03d}.yaml"
        path.write_bytes(mutant.text)
        paths.append(str(path))
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from tests.hostile.test_inventory_fuzz import "
            "check_all; check_all(sys.argv[1:])",
            *paths,
        ],
        cwd=REPO,
        env={**os.environ, **SECRET_ENV, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=CHILD_SECONDS,
        preexec_fn=_limit_child,
    )
    took = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(records) == len(made)

    problems = []
    outcomes = {0: 0, 2: 0}
    for mutant, record in zip(made, records, strict=True):
        found = _judge(record)
        if found:
            problems.append(f"mutant {mutant.index} ({', '.join(mutant.mutations)}): {found}")
        else:
            outcomes[record["code"]] += 1
    assert not problems, f"seed {SEED}:\n" + "\n".join(problems[:20])
    # The mutations bite, and some mutants stay valid (the fuzzer does not only make noise).
    assert outcomes[2] > MUTANTS // 2 and outcomes[0] > 0, outcomes
    assert max(r["peak_rss_kib"] for r in records) < PEAK_RSS_KIB
    assert took < CHILD_SECONDS


def _judge(record: dict) -> str:
    """What is wrong with one outcome, or ""."""
    stderr = record["stderr"]
    if "Traceback" in stderr or record["code"] not in (0, 2):
        return f"exit {record['code']}: {stderr[-1500:]}"
    if record["seconds"] > MUTANT_SECONDS:
        return f"took {record['seconds']:.2f}s"
    if record["code"] == 0:
        return "" if record["stdout"].startswith(f"{record['path']}: valid") else "no 'valid'"
    *errors, summary = stderr.splitlines()
    if summary != f"{record['path']}: {len(errors)} problem(s); nothing was run":
        return f"last line {summary!r}"
    for line in errors:
        if not (line.startswith(record["path"] + ":") and LOCATED.match(line)):
            return f"unplaced error line {line!r}"
        if len(line) > 1000:
            return f"an error line of {len(line)} characters"
        if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or c in "\u202e\u2028" for c in line):
            return f"unprintable character in {line!r}"
    return ""


if __name__ == "__main__":
    seed, count = int(sys.argv[1]), int(sys.argv[2])
    folder = Path(f"fuzz-{seed}")
    folder.mkdir(exist_ok=True)
    for mutant in mutants(seed, count):
        (folder / f"mutant-{mutant.index:03d}.yaml").write_bytes(mutant.text)
        print(mutant.index, ", ".join(mutant.mutations))
