"""Noise kernels against numpy/statsmodels on the same generated loss curve.

    .venv/bin/python benchmarks/bench_noise.py            # 1e3 .. 1e7
    .venv/bin/python benchmarks/bench_noise.py --max 1e6  # quick

ratio = anchor_s / ours_s (> 1: ours faster); "one pass (np.copy)" rows give
ours_s / copy_s. Medians of >= 5 interleaved repetitions after a warm-up; first calls
(compile or cache load) on their own rows.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import statsmodels  # noqa: E402
from statsmodels.tsa.stattools import acf  # noqa: E402

from benchmarks._common import compile_time, loss_curve, peak_rss_mb, save, sizes_from_argv  # noqa: E402
from kernels import noise as nz  # noqa: E402


def numpy_mad_noise(x):
    d = np.diff(x)
    return nz.NOISE_SCALE * np.median(np.abs(d - np.median(d)))


def numpy_oscillation(x):
    d = np.diff(x)
    s = np.sign(d[d != 0])
    return np.mean(s[1:] != s[:-1]), acf(d, nlags=1, fft=True)[1]


def numpy_snr(x):
    k = max(1, len(x) // 10)
    return abs(np.median(x[-k:]) - np.median(x[:k])) / numpy_mad_noise(x)


def cases(x):
    return [
        ("mad_noise", lambda: nz.mad_noise(x),
         [("numpy median(|diff - median|)", lambda: numpy_mad_noise(x))]),
        ("oscillation_index", lambda: nz.oscillation_index(x),
         [("numpy sign changes + statsmodels acf(fft)", lambda: numpy_oscillation(x))]),
        ("signal_to_noise", lambda: nz.signal_to_noise(x), [("numpy medians", lambda: numpy_snr(x))]),
        ("rolling_noise w=101", lambda: nz.rolling_noise(x, window=101), []),
    ]


def interleaved(fns: dict, repeat: int) -> dict:
    times = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def peak_rss_rows(n: int) -> list[dict]:
    """Peak RSS of each case in a fresh subprocess. The curve is written to a .npy file
    first and loaded by the child, so the child's peak is the imports, the curve and the
    call (not the generator's temporaries); the baseline child makes the same call on
    1,000 points, so peak - baseline is what the full-size call adds."""
    import tempfile
    tmp = Path(tempfile.mkdtemp())
    s, x = loss_curve(n)
    np.save(tmp / "s.npy", s)
    np.save(tmp / "x.npy", x)
    setup = (f"import numpy as np; s = np.load({str(tmp / 's.npy')!r}); x = np.load({str(tmp / 'x.npy')!r}); "
             "from kernels import noise as nz\n")
    out = []
    for kernel, code in [("mad_noise", "nz.mad_noise({x})"),
                         ("anchor: numpy mad", "d = np.diff({x}); np.median(np.abs(d - np.median(d)))")]:
        warm = code.format(x="x[:1000]")
        base = peak_rss_mb(setup + warm)
        mb = peak_rss_mb(setup + warm + "\n" + code.format(x="x"))
        out.append({"kernel": kernel, "kind": "peak_rss", "n": n, "peak_rss_mb": mb, "baseline_rss_mb": base,
                     "added_mb": mb - base, "input_mb": n * 8 / 2**20,
                     "notes": "fresh subprocess, curve loaded from .npy; baseline = imports + curve + the call on 1,000 points"})
        print(f"peak RSS n={n:,} {kernel}: +{mb - base:.0f} MiB over baseline {base:.0f} MiB", flush=True)
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    return out


def main() -> None:
    sizes = sizes_from_argv()
    if "--rss-only" in sys.argv:
        import json
        saved = json.loads((Path(__file__).resolve().parent / "results" / "noise.json").read_text())
        rows = [r for r in saved["rows"] if r.get("kind") != "peak_rss"] + peak_rss_rows(max(sizes))
        print(f"wrote {save('noise', rows, versions=saved['versions'])}")
        return
    rows = []
    _, x = loss_curve(1000)
    for kernel, ours, _ in cases(x):
        rows.append({"kernel": kernel, "kind": "compile", "n": 1000, "ours_s": compile_time(ours),
                     "notes": "first call in this process (numba compile or cache load)"})
    for n in sizes:
        _, x = loss_curve(n)
        assert math.isclose(nz.mad_noise(x), numpy_mad_noise(x), rel_tol=1e-12)
        repeat = 5 if n >= 10**6 else 21
        for kernel, ours, anchors in cases(x):
            fns = {"ours": ours, **{a: f for a, f in anchors}, "np.copy": lambda: np.copy(x)}
            for f in fns.values():
                f()
            t = interleaved(fns, repeat)
            for anchor, _ in anchors:
                rows.append({"kernel": kernel, "anchor": anchor, "n": n, "ours_s": t["ours"],
                             "anchor_s": t[anchor], "ratio": t[anchor] / t["ours"],
                             "notes": "ratio = anchor / ours"})
            rows.append({"kernel": kernel, "anchor": "one pass (np.copy)", "n": n, "ours_s": t["ours"],
                         "anchor_s": t["np.copy"], "ratio": t["ours"] / t["np.copy"],
                         "notes": "ratio = ours / copy: times one memory pass"})
            line = f"n={n:>9,} {kernel:22s} ours {t['ours'] * 1e3:9.3f} ms  copy x{t['ours'] / t['np.copy']:6.1f}"
            for anchor, _ in anchors:
                line += f" | {anchor} {t[anchor] * 1e3:9.3f} ms ({t[anchor] / t['ours']:.2f}x)"
            print(line, flush=True)
    n = max(sizes)
    rss_rows = peak_rss_rows(n)
    rows += rss_rows
    path = save("noise", rows, versions={"statsmodels": statsmodels.__version__})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
