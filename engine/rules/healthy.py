"""HEALTHY: the run raised no warning or critical finding."""

from __future__ import annotations

from engine.rules.base import Finding, RunContext, Thresholds, fmt, fmt_step, pct, rule


@rule(code="HEALTHY", summary="No warning or critical finding: the run looks healthy; its key figures.",
      scope="summary")
def healthy(ctx: RunContext, th: Thresholds) -> list[Finding]:
    """
    Evidence: the findings of every other rule on this run (none is a warning or
    critical), and per metric with a direction (losses first): initial, best and final
    value, best step, relative improvement, points.
    Why: HEALTHY is the absence of evidence of a problem under the thresholds in force,
    with the figures a reader checks first, so "nothing found" is visible and auditable
    rather than silent.
    Advice: nothing to fix; the key figures say where the run ended and whether info
    findings (CONVERGED, STILL_IMPROVING) suggest stopping earlier or training longer.
    Known false alarms: problems the analysis cannot see in curves (silent data or
    correctness bugs: a wrong label mapping trains a smooth, healthy-looking loss);
    very short curves (fewer than min_points points: confidence is lowered).
    """
    if any(f.severity in ("warning", "critical") for f in ctx.findings):
        return []
    names = [m for m in ctx.metric_names() if ctx.role(m)["direction"] != "none" and ctx.feature(m) is not None]
    if not names:
        return []
    names.sort(key=lambda m: (ctx.role(m)["kind"] not in ("loss", "perplexity"), ctx.role(m)["split"] != "train", m))
    figures = {}
    for m in names[: th.max_metrics]:
        f = ctx.feature(m)
        figures[m] = dict(initial=ctx.x(m, "initial_value"), best=ctx.x(m, "best_value"), best_step=f.get("best_step"),
                          final=ctx.x(m, "final_value"), final_step=f.get("final_step"),
                          improvement_rel=ctx.x(m, "improvement_rel"), points=f.get("n_points"))
    lead = names[0]
    g = figures[lead]
    n_points = max(int(ctx.x(m, "n_points")) if ctx.x(m, "n_points") == ctx.x(m, "n_points") else 0 for m in names)
    conf = th.confidence if n_points >= th.min_points else th.confidence_short
    infos = sorted({f.code for f in ctx.findings})
    msg = (f"No warning: {lead} went from {fmt(g['initial'])} to {fmt(g['final'])} by step {fmt_step(g['final_step'])} "
           f"(best {fmt(g['best'])} at step {fmt_step(g['best_step'])}, {pct(g['improvement_rel'])} better than at the start)"
           + (f"; info: {', '.join(infos)}" if infos else "") + ".")
    ev = dict(metrics=figures, info_findings=infos, max_points=n_points)
    steps = [f.get("final_step") for f in (ctx.feature(m) for m in names) if f.get("final_step") is not None]
    firsts = [f.get("step_first") for f in (ctx.feature(m) for m in names) if f.get("step_first") is not None]
    return [ctx.finding("HEALTHY", "info", conf, names[: th.max_metrics], min(firsts) if firsts else None,
                        max(steps) if steps else None, msg, ev,
                        "Nothing to fix; see the info findings for whether to stop earlier or train longer.")]
