"""NONFINITE: NaN or Inf values in a curve."""

from __future__ import annotations

from engine.rules.base import Finding, RunContext, Thresholds, fmt_step, rule

_KINDS_CRITICAL = ("loss", "perplexity")


@rule(code="NONFINITE", summary="A curve holds NaN or Inf values: the numbers stopped being numbers.")
def nonfinite(ctx: RunContext, th: Thresholds) -> list[Finding]:
    """
    Evidence: per metric the count of non-finite points (NaN, +Inf, -Inf), the first
    and last non-finite step, whether nothing finite follows the first one
    (``nonfinite_tail``: training died) and the last finite step.
    Why: a NaN or Inf in a loss means the forward or backward pass overflowed or divided
    by zero; every step after a NaN loss is wasted unless the trainer skipped the batch.
    A NaN only in grad_norm is the trace of a skipped step (Hugging Face filters NaN
    out of the logged loss by default).
    Advice: restart from the last checkpoint before the first non-finite step with a
    lower learning rate or tighter gradient clipping; check the batch at that step;
    prefer bf16 over fp16 (loss-scale underflow) and look for log(0)/division by zero in
    custom losses.
    Known false alarms: metrics that are NaN by construction for a while (an eval
    metric before the first eval logged as NaN, a ratio with a zero denominator); kinds
    listed in ignore_kinds are skipped.
    """
    bad = []
    for m in ctx.metric_names():
        r = ctx.role(m)
        if r["kind"] in th.ignore_kinds:
            continue
        f = ctx.feature(m)
        if f is None or not f.get("n_nonfinite"):
            continue
        bad.append(m)
    if not bad:
        return []
    # one finding per run: the metrics that went non-finite, earliest first
    per = {}
    for m in bad:
        f = ctx.feature(m)
        ex = f["extra"]
        first = int(f["first_nonfinite_step"])
        tail = bool(ex.get("nonfinite_tail"))
        last = ex.get("last_nonfinite_step")
        last = int(f["step_last"]) if tail else (int(last) if last is not None else first)
        per[m] = dict(n_nonfinite=int(f["n_nonfinite"]), n_nan=ex.get("n_nan"), n_posinf=ex.get("n_posinf"),
                      n_neginf=ex.get("n_neginf"), first_step=first, last_step=last, nonfinite_tail=tail,
                      last_finite_step=ex.get("last_finite_step"), kind=ctx.role(m)["kind"],
                      points=int(f["n_points"]))
    order = sorted(bad, key=lambda m: (per[m]["first_step"], ctx.role(m)["kind"] not in _KINDS_CRITICAL, m))
    lead = order[0]
    start = min(p["first_step"] for p in per.values())
    end = max(p["last_step"] for p in per.values())
    in_loss = [m for m in order if per[m]["kind"] in _KINDS_CRITICAL]
    died = [m for m in order if per[m]["nonfinite_tail"]]
    severity = "critical" if in_loss or died else "warning"
    p = per[lead]
    what = []
    for name, key in (("NaN", "n_nan"), ("+Inf", "n_posinf"), ("-Inf", "n_neginf")):
        if p[key]:
            what.append(f"{p[key]:,} {name}")
    msg = (f"{lead} holds {', '.join(what) or p['n_nonfinite']} value(s) of {p['points']:,}, first at step "
           f"{fmt_step(p['first_step'])}"
           + (" and nothing finite after it" if p["nonfinite_tail"] else "")
           + (f"; also non-finite: {', '.join(order[1:4])}" + (" ..." if len(order) > 4 else "") if len(order) > 1 else "")
           + ".")
    if died:
        advice = (f"Training died at step {fmt_step(start)}: restart from the last checkpoint before it with a lower "
                  "learning rate or tighter gradient clipping, and inspect the batch at that step; fp16 runs: "
                  "check the loss scale or move to bf16.")
    elif in_loss:
        advice = ("Isolated Inf/NaN losses: find the batches at those steps (empty or extreme targets, log(0) in a "
                  "custom loss); enable skipping of non-finite steps or clip gradients.")
    else:
        advice = ("Non-finite values in a diagnostic metric (e.g. grad_norm) mark steps the optimizer skipped or "
                  "overflowed: check the loss scale (fp16) and clipping; the logged loss may hide them.")
    return [ctx.finding("NONFINITE", severity, th.confidence, order, start, end, msg,
                        dict(metrics=per, first_step=start, last_step=end), advice)]
