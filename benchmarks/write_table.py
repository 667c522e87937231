"""Turn benchmarks/results/*.json into the README's benchmark section.

    python benchmarks/write_table.py            # print the markdown
    python benchmarks/write_table.py --out benchmarks/RESULTS.md   # write every table to a file

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


def _cell(key, v) -> str:
    if v is None:
        return ""
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":")).replace("|", "/")
    if (key.endswith("_s") or key == "seconds") and isinstance(v, (int, float)):
        return fmt_s(v)
    if key == "ratio" and isinstance(v, (int, float)):
        return fmt_ratio(v)
    if isinstance(v, float):
        return f"{v:,.4g}"
    if isinstance(v, int) and key in ("n", "points", "bytes", "runs"):
        return f"{v:,}"
    return str(v).replace("|", "/")


def render() -> str:
    """Every results file as a table with the union of its rows' keys as columns, in
    the order they first appear. Each script documents its own columns; `ratio` is
    anchor time / ours (above 1: we are faster) unless the row's notes say otherwise."""
    files = sorted((HERE / "results").glob("*.json"),
                   key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else 99, p.stem))
    out = []
    machine = None
    for path in files:
        data = json.loads(path.read_text())
        rows = data.get("rows") if isinstance(data, dict) else None
        if not rows:
            continue
        machine = machine or data.get("machine")
        keys = list(dict.fromkeys(k for r in rows for k in r))
        if "notes" in keys:
            keys.remove("notes")
            keys.append("notes")
        out.append(f"\n#### {data.get('family', path.stem)} (`benchmarks/results/{path.name}`)\n")
        out.append("| " + " | ".join(keys) + " |")
        out.append("|" + "---|" * len(keys))
        for r in rows:
            out.append("| " + " | ".join(_cell(k, r.get(k)) for k in keys) + " |")
    if machine:
        out.insert(0, "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()) + ".")
    return "\n".join(out) + "\n"


def main() -> None:
    text = render()
    if "--out" in sys.argv:
        Path(sys.argv[sys.argv.index("--out") + 1]).write_text(
            "# Benchmark results\n\nWritten by `python benchmarks/write_table.py --out benchmarks/RESULTS.md` "
            "from `benchmarks/results/*.json` (each written by its `bench_<family>.py`).\n\n" + text)
    elif "--readme" in sys.argv:
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
