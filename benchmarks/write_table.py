"""Turn benchmarks/results/*.json into the README's benchmark section.

    python benchmarks/write_table.py            # print the markdown
    python benchmarks/write_table.py --readme   # replace the section between the markers in README.md

Each results file is written by one bench_<family>.py script (see benchmarks/_common.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
ORDER = ["smoothing", "noise", "spikes", "display", "changepoints", "trend",
         "ingest_tensorboard", "ingest_formats", "store", "analyse"]


def fmt_s(x) -> str:
    if x is None or x == "":
        return ""
    if isinstance(x, str):
        return x
    if x >= 100:
        return f"{x:,.0f} s"
    if x >= 1:
        return f"{x:.2f} s"
    if x >= 1e-3:
        return f"{x * 1e3:.2f} ms"
    return f"{x * 1e6:.1f} µs"


def fmt_ratio(x) -> str:
    if x is None or x == "":
        return ""
    if isinstance(x, str):
        return x
    return f"{x:,.0f}x" if x >= 100 else f"{x:.2f}x"


def render() -> str:
    files = sorted((HERE / "results").glob("*.json"),
                   key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else 99, p.stem))
    out = []
    machine = None
    for path in files:
        data = json.loads(path.read_text())
        machine = machine or data.get("machine")
        rows = data["rows"]
        if not rows:
            continue
        out.append(f"\n#### {data['family']}\n")
        extra = sorted({k for r in rows for k in r} - {"kernel", "anchor", "n", "ours_s", "anchor_s", "ratio", "notes"})
        head = ["kernel", "n", "ours", "anchor", "anchor time", "speed-up"] + extra + ["notes"]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for r in rows:
            n = r.get("n")
            cells = [str(r.get("kernel", "")), f"{n:,}" if isinstance(n, int) else str(n or ""),
                     fmt_s(r.get("ours_s")), str(r.get("anchor", "") or ""), fmt_s(r.get("anchor_s")),
                     fmt_ratio(r.get("ratio"))]
            for k in extra:
                v = r.get(k, "")
                cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
            cells.append(str(r.get("notes", "") or ""))
            out.append("| " + " | ".join(cells) + " |")
    if machine:
        out.insert(0, "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()) + ".")
    return "\n".join(out) + "\n"


def main() -> None:
    text = render()
    if "--readme" in sys.argv:
        readme = README.read_text()
        if BEGIN not in readme:
            readme += f"\n{BEGIN}\n{END}\n"
        pre, rest = readme.split(BEGIN, 1)
        _, post = rest.split(END, 1)
        README.write_text(pre + BEGIN + "\n" + text + END + post)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
