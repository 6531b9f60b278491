"""Compare two pytest junit XML reports: counts per outcome and the tests whose outcome differs.

python scripts/trl_dropin/compare.py stock.xml ours.xml
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import Counter


def outcomes(path: str) -> dict[str, tuple[str, str]]:
    result = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                if child.tag == "skipped" and child.get("type") == "pytest.xfail":
                    outcome = "xfailed"
                message = (child.get("message") or "").splitlines()[0][:160] if child.get("message") else ""
                break
        result[name] = (outcome, message)
    return result


def main(stock_path: str, ours_path: str) -> int:
    stock, ours = outcomes(stock_path), outcomes(ours_path)
    for label, res in (("stock", stock), ("ours", ours)):
        counts = Counter(o for o, _ in res.values())
        print(f"{label:5s}: {len(res)} tests  " + "  ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    differ = sorted(
        n for n in stock.keys() | ours.keys() if stock.get(n, ("absent",))[0] != ours.get(n, ("absent",))[0]
    )
    print(f"differing outcomes: {len(differ)}")
    for name in differ:
        s, o = stock.get(name, ("absent", "")), ours.get(name, ("absent", ""))
        print(f"  {name}\n    stock: {s[0]} {s[1]}\n    ours:  {o[0]} {o[1]}")

    # Same outcome, different exception type: a failure for both can still hide a regression of ours.
    def kind(message: str) -> str:
        return message.split(":", 1)[0] if message else ""

    hidden = sorted(
        n
        for n in stock.keys() & ours.keys()
        if stock[n][0] == ours[n][0] == "failed" and kind(stock[n][1]) != kind(ours[n][1])
    )
    print(f"failed for both, different exception type: {len(hidden)}")
    for name in hidden:
        print(f"  {name}\n    stock: {stock[name][1]}\n    ours:  {ours[name][1]}")
    return 1 if differ or hidden else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
