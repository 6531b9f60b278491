"""Summarize the last `mutmut run` (``make mutation``): killed / equivalent / survived per module, and the score.

Equivalent mutants are listed in tests/mutation_equivalents.txt, one per line:

    <function>: <the mutated line, stripped> | <one-line reason>

An entry matches every mutant of that function whose diff adds exactly that line, so the list survives the
renumbering of mutants when a function changes; entries that no longer match any mutant are reported as stale.
Run from the repository root after `mutmut run`. Prints a Markdown table; the last line is the score.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from pathlib import Path

from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code
from mutmut.utils.file_utils import walk_mutatable_files

EQUIVALENTS = Path("tests/mutation_equivalents.txt")


def function_of(mutant: str) -> str:
    """``trl_token_ext.advantages.x_token_advantages__mutmut_12`` -> ``advantages.token_advantages``."""
    module, _, name = mutant.rpartition(".")
    name = name.rsplit("__mutmut_", 1)[0]
    if name.startswith("x_"):
        name = name[2:]
    elif "ǁ" in name:  # methods: xǁClassǁmethod
        name = ".".join(part for part in name.split("ǁ")[1:] if part)
    return f"{module.removeprefix('trl_token_ext.')}.{name}"


def added_line(mutant: str, path: Path) -> str:
    """The first line the mutant's diff adds, stripped."""
    for line in get_diff_for_mutant(mutant, path=path).splitlines():
        if line.startswith("+") and not line.startswith("+++"):
            return line[1:].strip()
    return ""


def load_equivalents() -> dict[tuple[str, str], str]:
    entries = {}
    for number, raw in enumerate(EQUIVALENTS.read_text().splitlines(), 1):
        if not raw.strip() or raw.startswith("#"):
            continue
        head, _, reason = raw.rpartition(" | ")
        function, _, line = head.partition(": ")
        if not (function and line and reason):
            sys.exit(f"{EQUIVALENTS}:{number}: expected '<function>: <mutated line> | <reason>'")
        entries[(function.strip(), line.strip())] = reason.strip()
    return entries


def main() -> None:
    equivalents = load_equivalents()
    used = set()
    counts: dict[str, Counter] = defaultdict(Counter)
    survivors = []
    for path in walk_mutatable_files():
        data = SourceFileMutationData(path=path)
        data.load()
        for mutant, exit_code in data.exit_code_by_key.items():
            status = status_by_exit_code[exit_code]
            module = str(path)
            if status == "not checked":  # outside `make mutation`'s MUTATION_SCOPE
                counts[module]["out of scope"] += 1
                continue
            if status in ("killed", "timeout"):
                counts[module]["killed"] += 1
                continue
            key = (function_of(mutant), added_line(mutant, path))
            if key in equivalents:
                used.add(key)
                counts[module]["equivalent"] += 1
            else:
                counts[module][status] += 1
                survivors.append(f"{mutant} ({status}): {key[1]}")
    columns = ["killed", "equivalent", "survived", "no tests", "out of scope"]
    print("| module | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    total: Counter = Counter()
    for module in sorted(counts):
        total.update(counts[module])
        print(f"| {module} | " + " | ".join(str(counts[module][c]) for c in columns) + " |")
    print("| **total** | " + " | ".join(f"**{total[c]}**" for c in columns) + " |")
    for line in survivors:
        print(f"  not killed: {line}")
    for function, line in sorted(set(equivalents) - used):
        print(f"  stale equivalent entry (no such mutant now; re-check): {function}: {line}")
    candidates = sum(total.values()) - total["equivalent"] - total["out of scope"]
    score = total["killed"] / candidates if candidates else 0.0
    print(f"mutation score: {total['killed']}/{candidates} non-equivalent mutants killed = {score:.1%}")


if __name__ == "__main__":
    main()
