"""Metric roles inferred from metric names: split, kind, objective, role, direction.

A name is cut into path segments at ``/`` and each segment into lower-case tokens at
``_``, ``-``, ``.``, spaces and camelCase boundaries (``Loss/train`` -> ``loss | train``,
``eval_g0_loss`` -> ``eval g0 loss``). Then:

- split: the first split word anywhere: train (train, training), val (val, valid,
  validation, eval, evaluation, dev), test (test, testing, predict). Otherwise none.
  Inside a ``ppo/`` namespace ``val`` means the value head, not validation.
- kind, checked in this order so that a name with several cues gets the most specific:
  lr, grad_norm, throughput (rates: max; time per step such as ``dt``/``step_avg``: min),
  counters/bookkeeping (epoch, step, runtime, num_tokens, flos, ratios, fractions:
  other), perplexity, kl (any ``kl`` token except coefficients), accuracy (task scores:
  accuracy, f1, rouge, bleu, precision, ... are max; wer, cer, error are min: "accuracy"
  means "a task score", and the direction says which way is better), reward, loss
  (only when a loss token is present: loss, nll, xent, mse, mae, bpb ...). Anything
  else is ``other`` with direction ``none``: an exotic name never becomes a loss.
- objective: the group a metric belongs to. A modality or task namespace (``text/loss``,
  ``task_a/loss``) or the tokens before the kind word (``lm_loss`` -> lm,
  ``policy_loss`` -> policy); RL and preference names (``ppo/``, ``objective/``,
  ``rewards/``, ``logps/``, ``reward``, ``kl``) -> policy; otherwise ``main``.
- role: qualifiers joined by ``,``: the Hugging Face eval-set name (``eval_g0_loss`` ->
  split val, objective main, role g0, so each eval set pairs with the train loss), gold
  vs proxy reward (``gold_*``, ``oracle``, ``true_reward`` are gold; any other reward is
  the proxy), chosen/rejected/margins (DPO), std (a spread, direction none), and the
  Lightning/Keras aggregation step/epoch (``train_loss_step``, ``validation/epoch_loss``).
- direction: from the kind (loss, perplexity: min; accuracy, reward, throughput: max;
  kl, grad_norm, lr, other: none), except error rates and time per step (min), spreads
  and DPO chosen/rejected rewards (none: both can fall while the margin, the objective,
  rises).

Names are read one at a time, except one run-level rule (``infer_run`` /
``train_by_partner``): a plain ``loss`` (or ``mean_token_accuracy``) logged next to
``eval_loss`` (``eval_mean_token_accuracy``) is the training split.

A user mapping (engine/mapping.py) overrides any of these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

SPLITS = ("train", "val", "test", "none")
KINDS = ("loss", "perplexity", "accuracy", "reward", "kl", "grad_norm", "lr", "throughput", "other")
DIRECTIONS = ("min", "max", "none")

KIND_DIRECTION = {
    "loss": "min", "perplexity": "min", "accuracy": "max", "reward": "max", "kl": "none",
    "grad_norm": "none", "lr": "none", "throughput": "max", "other": "none",
}


@dataclass(frozen=True)
class MetricRole:
    split: str
    kind: str
    objective: str
    role: str
    direction: str
    inferred: bool = True

    def as_dict(self) -> dict:
        return {"split": self.split, "kind": self.kind, "objective": self.objective,
                "role": self.role, "direction": self.direction, "inferred": self.inferred}


_SPLIT_WORDS = {
    "train": "train", "training": "train", "trn": "train",
    "val": "val", "valid": "val", "validation": "val", "eval": "val", "evaluation": "val",
    "dev": "val", "validate": "val",
    "test": "test", "testing": "test", "predict": "test",
}
_MODALITIES = {"text", "image", "audio", "video", "vision", "speech", "language", "code", "img", "txt"}
_RL_NAMESPACES = {"ppo", "objective", "rewards", "logps", "logits", "env", "grpo", "dpo", "rl",
                  "rollout", "policy", "completions", "clip_ratio"}
_GENERIC_NAMESPACES = {"metrics", "metric", "charts", "trainer", "optim", "optimizer", "perf",
                       "performance", "system", "sys", "time", "timing", "info", "stats", "misc",
                       "loss", "losses", "epoch", "step", "batch", "scalars", "scalar", "logs",
                       "log", "summary", "global", "lightning"}
_IGNORED = {"mean", "avg", "average", "total", "overall", "all", "local", "global", "smooth",
            "smoothed", "ema", "running", "batch", "per", "token", "vs", "iterations",
            "iteration", "iters", "steps"}
_AGGREGATIONS = {"step", "epoch"}
_GOLD = {"gold", "oracle", "true", "gt", "human", "groundtruth"}
_PAIR_ROLES = {"chosen", "rejected", "margins", "margin"}
_SPREAD = {"std", "var", "stddev", "variance"}

_MAX_SCORES = {"acc", "accuracy", "accuracies", "bacc", "top1", "top5", "f1", "fscore", "f1score",
               "precision", "recall", "auc", "auroc", "roc", "map", "iou", "miou", "dice", "bleu",
               "sacrebleu", "rouge", "rouge1", "rouge2", "rougel", "rougelsum", "meteor", "em",
               "exact", "mcc", "r2", "correct", "winrate", "chrf", "spearman", "pearson", "kappa",
               "bertscore", "pass@1", "hit", "hits", "ndcg", "mrr"}
_MIN_SCORES = {"wer", "cer", "error", "err", "errors", "ter"}
_LOSS = {"loss", "losses", "nll", "xent", "crossentropy", "mse", "mae", "rmse", "bpb", "bpc",
         "l1", "l2", "huber"}
_COUNTERS = {"epoch", "epochs", "step", "steps", "globalstep", "runtime", "timestamp", "time",
             "flos", "tokens", "seen", "len", "length", "lengths", "count", "num", "n", "frac",
             "fraction", "ratio", "clipped", "clip", "memory", "mem", "gpu", "iter", "iteration",
             "samples", "examples", "elapsed", "duration", "seconds", "ms", "gen", "entropy",
             "advantage", "advantages", "coef", "ctl", "beta", "temperature", "scale", "wandb",
             "norm", "param", "weight", "weights", "sequence"}


def _tokens(segment: str) -> list[str]:
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", segment)
    toks = [t for t in re.split(r"[_\-\s.,:()\[\]]+", s.lower()) if t]
    # rouge-1 -> rouge1, top-1 -> top1, pass@1 kept whole
    out: list[str] = []
    for t in toks:
        if out and t.isdigit() and out[-1] in ("rouge", "top", "bleu"):
            out[-1] = out[-1] + t
        elif out and t in ("l", "lsum") and out[-1] == "rouge":
            out[-1] = "rouge" + t
        else:
            out.append(t)
    return out


def _joined(tokens: list[str]) -> str:
    return "_".join(tokens)


def infer(name: str) -> MetricRole:
    """Infer split, kind, objective, role and direction of a metric from its name."""
    raw_segments = [s for s in name.strip().split("/") if s.strip()]
    segments = [_tokens(s) for s in raw_segments]
    segments = [s for s in segments if s]
    if not segments:
        return MetricRole("none", "other", "main", "", "none")
    rl = segments[0][0] in _RL_NAMESPACES or (len(segments) > 1 and segments[0] == ["train"]
                                              and segments[1][0] in _RL_NAMESPACES)
    in_ppo = segments[0] == ["ppo"]

    # ---- split -------------------------------------------------------------------------
    split = "none"
    hf_prefix = False
    for si, seg in enumerate(segments):
        for ti, tok in enumerate(seg):
            word = _SPLIT_WORDS.get(tok)
            if word is None or (in_ppo and tok == "val"):
                continue
            if split == "none":
                split = word
                hf_prefix = len(segments) == 1 and ti == 0 and len(seg) > 2 and tok in ("eval", "predict", "test")
            seg[ti] = ""  # consumed
    if in_ppo:
        segments = [["value" if t == "val" else t for t in seg] for seg in segments]
    segments = [[t for t in seg if t] for seg in segments]
    segments = [s for s in segments if s]
    if not segments:  # a name that is only a split word
        return MetricRole(split, "other", "main", "", "none")

    flat = [t for seg in segments for t in seg]
    toks = set(flat)
    core = _joined(flat)
    last = segments[-1]
    namespaces = [_joined(s) for s in segments[:-1]]

    roles: list[str] = []
    direction_override = None

    # ---- kind --------------------------------------------------------------------------
    kind = None
    kind_token = None
    if ("lr" in toks or "learning_rate" in core or "learningrate" in toks) and "kl" not in toks:
        kind, kind_token = "lr", "lr" if "lr" in toks else "rate"
    elif re.search(r"(^|_)(grad|gradient|grads)_(l2_)?norm", core) or toks & {"gnorm", "gradnorm"} \
            or core in ("norm", "total_norm", "grad_l2"):
        kind, kind_token = "grad_norm", "norm"
        if "square" in toks or "squared" in toks or "sq" in toks:
            roles.append("square")
    elif re.search(r"(^|_)(tokens?|tok|toks|samples?|steps?|it|iters?|seqs?|sequences?|examples?|images?|imgs?)"
                   r"_(per_)?(sec|second|seconds|s)($|_)", core) or toks & {"throughput", "mfu", "tflops",
                                                                             "tps", "hfu"}:
        kind, kind_token = "throughput", None
    elif core in ("dt", "dt_ms", "step_time", "iter_time", "time_per_step", "batch_time", "data_time",
                  "step_avg", "step_avg_ms", "time_per_iter", "iteration_time") or \
            (len(last) == 1 and last[0] == "dt"):
        kind, kind_token, direction_override = "throughput", None, "min"
    elif "kl" in toks or "kld" in toks or "approxkl" in toks or "kl_div" in core:
        if toks & {"coef", "ctl", "beta", "target", "penalty_coef"}:
            kind = "other"
        else:
            kind, kind_token = "kl", "kl"
    elif toks & {"ppl", "perplexity", "perp"}:
        kind, kind_token = "perplexity", None
    elif toks & (_MAX_SCORES | _MIN_SCORES) and not toks & {"frac", "fraction", "count", "num"}:
        kind = "accuracy"
        if toks & _MIN_SCORES and not toks & _MAX_SCORES:
            direction_override = "min"
    elif toks & {"reward", "rewards", "return", "returns", "score", "scores"} and \
            not toks & {"frac", "fraction", "zero", "count", "num", "advantage", "non"}:
        kind, kind_token = "reward", None
    elif toks & _LOSS or core.endswith("cross_entropy"):
        kind, kind_token = "loss", None
    else:
        kind = "other"

    # ---- role qualifiers ---------------------------------------------------------------
    if toks & _SPREAD and kind != "other":
        roles.append("std")
        direction_override = "none"
    for t in flat:
        if t in _PAIR_ROLES:
            roles.append("margins" if t.startswith("margin") else t)
    if toks & _GOLD and kind in ("reward", "accuracy", "loss", "other"):
        roles.append("gold")
    if kind == "reward" and not (set(roles) & {"gold", "chosen", "rejected", "margins", "std"}):
        roles.append("proxy")
    if kind in ("loss", "perplexity", "accuracy", "kl") and len(flat) > 1:
        if last[-1] in _AGGREGATIONS:
            roles.append(last[-1])
        elif last[0] in _AGGREGATIONS and len(last) > 1:
            roles.append(last[0])

    # ---- objective ---------------------------------------------------------------------
    objective = None
    kind_words = (_LOSS | _MAX_SCORES | _MIN_SCORES | {"ppl", "perplexity", "perp", "reward", "rewards",
                                                       "kl", "return", "returns", "score", "scores"})
    leftovers = [t for t in last if t not in kind_words and t not in _IGNORED and t not in _AGGREGATIONS
                 and t not in _SPREAD and t not in _PAIR_ROLES and t not in _GOLD and not t.isdigit()
                 and t not in ("fn", "fct", "func")]
    if kind in ("loss", "perplexity", "accuracy") and hf_prefix and leftovers:
        # Hugging Face eval_<set>_<metric>: the eval set is a role of the main objective
        roles.insert(0, _joined(leftovers))
        leftovers = []
    for ns in namespaces:
        if ns in _MODALITIES:
            objective = ns
            break
    if objective is None:
        if in_ppo and len(segments) > 2 and segments[1] == ["loss"]:
            objective = "value" if last[0] in ("value", "vf") else "policy"
        elif rl:
            objective = "policy"
            if segments[0][0] == "rewards" and len(segments) > 2:
                roles.insert(0, _joined([t for t in segments[1] if t not in ("reward", "fn", "func")]))
    if objective is None and kind != "throughput":
        for ns in namespaces:
            if ns not in _GENERIC_NAMESPACES and ns not in _SPLIT_WORDS and not ns.startswith("lr") \
                    and ns not in _RL_NAMESPACES:
                objective = ns
                break
    if objective is None and kind in ("loss", "perplexity", "accuracy", "reward") and leftovers:
        cand = _joined(leftovers)
        if cand in ("value", "vf", "critic"):
            objective = "value"
        elif cand in ("pg", "policy", "actor", "ppo"):
            objective = "policy"
        else:
            objective = cand
    if objective is None and kind in ("reward", "kl"):
        objective = "policy"
    if objective is None:
        objective = "main"

    direction = direction_override or KIND_DIRECTION[kind]
    if kind == "reward" and set(roles) & {"chosen", "rejected"}:
        direction = "none"
    if kind == "other":
        direction = "none"
    # de-duplicate roles, keep order
    seen: list[str] = []
    for r in roles:
        if r and r not in seen:
            seen.append(r)
    return MetricRole(split, kind, objective, ",".join(seen), direction)


_TRAIN_PROMOTABLE = ("loss", "perplexity", "accuracy")


def train_by_partner(roles: dict[str, MetricRole]) -> dict[str, MetricRole]:
    """Roles of one run's metrics with unsplit training curves given their split.

    Hugging Face Trainer (and Keras) log the training loss as plain ``loss`` next to
    ``eval_loss`` (Keras: ``val_loss``); TRL logs ``mean_token_accuracy`` next to
    ``eval_mean_token_accuracy``. Alone, ``loss`` has split "none"; when the run also
    holds a held-out metric (split val or test) whose name is ``<held-out prefix>`` +
    separator + this name (``eval_loss``, ``eval_g0_loss``, ``val_loss``,
    ``eval/mean_token_accuracy``) with the same kind and direction, the plain name is the
    training split. Only inferred roles of kind loss, perplexity or accuracy change; a
    role set by a user mapping (``inferred`` False) is kept as given.
    """
    out = dict(roles)
    held = [(n.lower(), r) for n, r in roles.items() if r.split in ("val", "test")]
    for name, r in roles.items():
        if not r.inferred or r.split != "none" or r.kind not in _TRAIN_PROMOTABLE or r.direction == "none":
            continue
        low = name.lower()
        for hn, hr in held:
            if (hr.kind == r.kind and hr.direction == r.direction and len(hn) > len(low) + 1
                    and hn.endswith(low) and hn[-len(low) - 1] in "_/-. "):
                out[name] = replace(r, split="train")
                break
    return out


def infer_run(names) -> dict[str, MetricRole]:
    """``infer`` over all metric names of one run, then ``train_by_partner``."""
    return train_by_partner({n: infer(n) for n in names})


def override(role: MetricRole, fields: dict) -> MetricRole:
    """Apply user-set fields; when the kind changes and the direction is not given, the
    direction follows the new kind (and a 'proxy' role, which only rewards have, goes)."""
    if not fields:
        return role
    new = replace(role, **fields, inferred=False)
    if "kind" in fields and "direction" not in fields:
        new = replace(new, direction=KIND_DIRECTION[new.kind])
    if "kind" in fields and "role" not in fields and new.kind != "reward":
        new = replace(new, role=",".join(r for r in new.role.split(",") if r and r != "proxy"))
    return new
