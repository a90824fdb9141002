"""Mutation testing of one module against its own tests, with mutmut 3, by hand (never in CI).

    python tools/mutation.py monitor/engine/state.py tests/test_state.py tests/test_state_pins.py
    python tools/mutation.py monitor/core/options.py tests/test_options.py --show

The working tree (tracked and untracked files git does not ignore) is copied to a scratch folder
(`--workdir`, /tmp/commwatch-mutation/<dotted module> by default) whose pyproject.toml gets the
`[tool.mutmut]` table naming the module and the tests, so neither the repository nor its
configuration is touched. mutmut runs there at nice 10 with `--children` workers and a limit of
`--limit` seconds, then every mutant's outcome is read back (`mutmut results --all true`).

A surviving mutant that changes nothing but the text of one string literal (mutmut's `XX..XX`
and case changes) is counted as equivalent: message wording is reviewed, not pinned. The rule is
syntactic, so the list is printed: a string that is a key or a unit rather than words must be
pinned by a test, not waved through. Prints the surviving mutants, then one JSON line:

    score          detected / all mutants; detected is killed or timed out (a mutant that makes
                   the tests hang is caught too), "no tests" counts against
    score_no_text  detected / (all mutants - surviving text-only mutants)

Needs mutmut in the virtual environment (`.venv/bin/pip install mutmut`); docs/mutation-testing.md
says how to read the results.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tokenize
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent
# Everything a test may import is copied into mutmut's tree; only `module` is mutated.
SOURCE_PATHS = ("monitor", "probes", "tui")
DETECTED = frozenset({"killed", "timeout"})
SURVIVED = "survived"


def mutmut_table(module: str, tests: Sequence[str], others: Sequence[str]) -> str:
    """The `[tool.mutmut]` table for one module against its tests; `others` are the files and
    folders beside the sources that tests read (inventory.yaml, README.md, bench/). TOML
    written by hand: the values are paths, quoted by json.dumps as TOML basic strings are."""
    return "\n".join(
        (
            "",
            "[tool.mutmut]",
            f"source_paths = {json.dumps(list(SOURCE_PATHS))}",
            f"only_mutate = {json.dumps([module])}",
            f"pytest_add_cli_args_test_selection = {json.dumps(list(tests))}",
            f"also_copy = {json.dumps(list(others))}",
            # mutmut picks the tests per mutant from the coverage of this selection.
            'pytest_add_cli_args = ["-q", "-p", "no:cacheprovider"]',
            "",
        )
    )


def copy_tree(workdir: Path) -> None:
    """The working tree as it is now, uncommitted changes included."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    if workdir.exists():
        shutil.rmtree(workdir)
    for name in filter(None, (os.fsdecode(n) for n in listed)):
        source = REPO / name
        if source.is_file():
            target = workdir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _tokens(code: str) -> list[tuple[int, str]] | None:
    try:
        return [
            (token.type, token.string)
            for token in tokenize.generate_tokens(io.StringIO(code).readline)
            if token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
        ]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None


def is_text_only(diff: str) -> bool:
    """Whether a mutant's unified diff (`mutmut show`) changes the text of one string literal
    and nothing else: the same tokens on both sides but one STRING token, whose replacement
    fields, if it is an f-string, are unchanged."""
    removed = [line[1:] for line in diff.splitlines() if line.startswith("-")]
    added = [line[1:] for line in diff.splitlines() if line.startswith("+")]
    removed = [line for line in removed if not line.startswith("--")]
    added = [line for line in added if not line.startswith("++")]
    before, after = _tokens("\n".join(removed)), _tokens("\n".join(added))
    if before is None or after is None or len(before) != len(after):
        return False
    differing = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    return len(differing) == 1 and all(
        b[0] == a[0] == tokenize.STRING and _fields(b[1]) == _fields(a[1]) for b, a in differing
    )


def _fields(literal: str) -> list[str] | None:
    """The replacement fields of an f-string (`{value // 60:02d}`), which are code, not text;
    [] for a plain string."""
    try:
        node = ast.parse(literal, mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(node, ast.JoinedStr):
        return []
    return [ast.dump(part) for part in node.values if not isinstance(part, ast.Constant)]


def outcomes(mutmut: Path, workdir: Path) -> dict[str, str]:
    """Every mutant's outcome: `name: status` lines of `mutmut results --all true`."""
    printed = subprocess.run(
        [str(mutmut), "results", "--all", "true"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = {}
    for line in printed.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            found[name] = status
    return found


def show(mutmut: Path, workdir: Path, name: str) -> str:
    return subprocess.run(
        [str(mutmut), "show", name], cwd=workdir, capture_output=True, text=True, check=True
    ).stdout


def run_mutmut(command: list[str], workdir: Path, out: IO[str], limit: float) -> int | None:
    """mutmut's exit status, or None when it ran out of time: then it and the workers it forked
    (its own process group) are stopped, so no mutant keeps running after the tool returns."""
    process = subprocess.Popen(
        command, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        return process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See docs/mutation-testing.md.",
    )
    parser.add_argument("module", help="the file to mutate, e.g. monitor/engine/state.py")
    parser.add_argument("tests", nargs="+", help="its own test files")
    parser.add_argument("--workdir", type=Path, help="scratch folder (replaced)")
    parser.add_argument("--children", type=int, default=2, help="parallel workers (2)")
    parser.add_argument("--limit", type=int, default=3600, help="seconds before giving up")
    parser.add_argument("--show", action="store_true", help="print each survivor's diff")
    args = parser.parse_args()
    for path in (args.module, *args.tests):
        if not (REPO / path).is_file():
            parser.error(f"{path} is not a file of the repository (paths are from its root)")
    mutmut = Path(sys.executable).parent / "mutmut"
    if not mutmut.exists():
        parser.error(
            f"{mutmut} is missing: install it with {Path(sys.executable)} -m pip install mutmut"
        )
    # Named after the module's dotted path: monitor/engine/checks.py and monitor/config/checks.py
    # must not share one.
    dotted = ".".join(Path(args.module).with_suffix("").parts)
    workdir = args.workdir or Path("/tmp/commwatch-mutation") / dotted
    copy_tree(workdir)
    others = sorted(p.name for p in workdir.iterdir() if p.name not in SOURCE_PATHS)
    with (workdir / "pyproject.toml").open("a", encoding="utf-8") as pyproject:
        pyproject.write(mutmut_table(args.module, args.tests, others))
    log = workdir / "mutmut.log"
    with log.open("w", encoding="utf-8") as out:
        returncode = run_mutmut(
            ["nice", "-n", "10", str(mutmut), "run", "--max-children", str(args.children)],
            workdir,
            out,
            args.limit,
        )
    if returncode is None:
        raise SystemExit(f"mutmut gave no result within --limit {args.limit}s; see {log}")
    if returncode != 0:
        raise SystemExit(f"mutmut exited {returncode}; its output is in {log}")

    found = outcomes(mutmut, workdir)
    tally = Counter(found.values())
    text_only = []
    for name, status in sorted(found.items()):
        if status in DETECTED:
            continue
        diff = show(mutmut, workdir, name)
        text = status == SURVIVED and is_text_only(diff)
        if text:
            text_only.append(name)
        print(f"{status}{' (text only)' if text else ''}: {name}")
        if args.show:
            print(diff)
    total = len(found)
    counted = total - len(text_only)
    detected = sum(tally[status] for status in DETECTED)
    print(
        json.dumps(
            {
                "module": args.module,
                "tests": args.tests,
                "mutants": total,
                **dict(sorted(tally.items())),
                "text_only_survivors": len(text_only),
                "score": round(100 * detected / total, 1) if total else None,
                "score_no_text": round(100 * detected / counted, 1) if counted else None,
            }
        )
    )


if __name__ == "__main__":
    main()
