#!/usr/bin/env python3
"""The top entries of a py-spy raw profile, as text: where a live worker's time goes.

    python bench/spy_top.py spy.txt [--top 40]

`py-spy record --format raw` writes one line per distinct stack, `frame;frame;... count`, each frame
`function (path:line)`. This prints each function's share of the samples twice: inclusive (on the
stack at all) and self (the innermost frame). Why a script: the bench runs on machines without a
browser for py-spy's SVG, and the closing notes quote these tables. Functions are named with their
file's last two path parts (`gunicorn/util.py`), lines dropped, so one function is one row.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterable

_FRAME = re.compile(r"^(?P<function>.*) \((?P<path>[^()]*?)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    """`call_service (/srv/cds_service/hooks.py:52)` -> `call_service (cds_service/hooks.py)`."""
    found = _FRAME.match(frame.strip())
    if not found:
        return frame.strip()
    return f"{found['function']} ({'/'.join(found['path'].split('/')[-2:])})"


def shares(lines: Iterable[str]) -> tuple[int, Counter[str], Counter[str]]:
    """(samples, inclusive samples per function, self samples per function) of py-spy raw lines."""
    total = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        names = [frame_name(f) for f in stack.split(";")]
        total += n
        inclusive.update(dict.fromkeys(names, n))      # a recursive function counts once per sample
        own[names[-1]] += n
    return total, inclusive, own


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw", help="py-spy record --format raw output")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args(argv)
    with open(args.raw, encoding="utf-8") as f:
        total, inclusive, own = shares(f)
    if not total:
        print(f"{args.raw}: no samples", file=sys.stderr)
        return 1
    for title, counts in (("inclusive", inclusive), ("self", own)):
        print(f"{title} ({total} samples)")
        for name, n in counts.most_common(args.top):
            print(f"  {100 * n / total:5.1f} %  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
