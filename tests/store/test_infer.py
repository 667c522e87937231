"""Metric-role inference: every convention, the mapping file, the real corpus."""

from __future__ import annotations

import re

import pytest

from engine.errors import ConfigError
from engine.infer import DIRECTIONS, KINDS, SPLITS, infer
from engine.mapping import load_mapping

# name, split, kind, objective, role, direction
CASES = [
    ("loss", "none", "loss", "main", "", "min"),
    ("eval_loss", "val", "loss", "main", "", "min"),
    ("eval_g0_loss", "val", "loss", "main", "g0", "min"),
    ("eval_g3_accuracy", "val", "accuracy", "main", "g3", "max"),
    ("eval_squad_v2_loss", "val", "loss", "main", "squad_v2", "min"),
    ("predict_loss", "test", "loss", "main", "", "min"),
    ("train/loss", "train", "loss", "main", "", "min"),
    ("val/loss", "val", "loss", "main", "", "min"),
    ("validation/epoch_loss", "val", "loss", "main", "epoch", "min"),
    ("train/epoch_loss", "train", "loss", "main", "epoch", "min"),
    ("eval/loss", "val", "loss", "main", "", "min"),
    ("Loss/train", "train", "loss", "main", "", "min"),
    ("Loss/validation", "val", "loss", "main", "", "min"),
    ("loss_val", "val", "loss", "main", "", "min"),
    ("val_acc", "val", "accuracy", "main", "", "max"),
    ("Val Acc", "val", "accuracy", "main", "", "max"),
    ("train_loss_step", "train", "loss", "main", "step", "min"),
    ("train_loss_epoch", "train", "loss", "main", "epoch", "min"),
    ("val_loss", "val", "loss", "main", "", "min"),
    ("test_acc_epoch", "test", "accuracy", "main", "epoch", "max"),
    ("validation_bacc", "val", "accuracy", "main", "", "max"),
    ("objective/kl", "none", "kl", "policy", "", "none"),
    ("objective/rlhf_reward", "none", "reward", "policy", "proxy", "max"),
    ("objective/entropy", "none", "other", "policy", "", "none"),
    ("ppo/loss/policy", "none", "loss", "policy", "", "min"),
    ("ppo/loss/value", "none", "loss", "value", "", "min"),
    ("ppo/mean_scores", "none", "reward", "policy", "proxy", "max"),
    ("ppo/val/vpred", "none", "other", "policy", "", "none"),
    ("rewards/chosen", "none", "reward", "policy", "chosen", "none"),
    ("rewards/rejected", "none", "reward", "policy", "rejected", "none"),
    ("rewards/margins", "none", "reward", "policy", "margins", "max"),
    ("rewards/accuracies", "none", "accuracy", "policy", "", "max"),
    ("logps/chosen", "none", "other", "policy", "chosen", "none"),
    ("logits/rejected", "none", "other", "policy", "rejected", "none"),
    ("rewards/format_reward_fn/mean", "none", "reward", "policy", "format,proxy", "max"),
    ("reward", "none", "reward", "policy", "proxy", "max"),
    ("reward_std", "none", "reward", "policy", "std", "none"),
    ("eval/gold_reward", "val", "reward", "policy", "gold", "max"),
    ("gold_reward_mean", "none", "reward", "policy", "gold", "max"),
    ("kl", "none", "kl", "policy", "", "none"),
    ("kl_coef", "none", "other", "main", "", "none"),
    ("grad_norm", "none", "grad_norm", "main", "", "none"),
    ("train/grad_norm", "train", "grad_norm", "main", "", "none"),
    ("grad_norm_square", "none", "grad_norm", "main", "square", "none"),
    ("learning_rate", "none", "lr", "main", "", "none"),
    ("train/learning_rate", "train", "lr", "main", "", "none"),
    ("lr", "none", "lr", "main", "", "none"),
    ("lr-AdamW", "none", "lr", "main", "", "none"),
    ("text/loss", "none", "loss", "text", "", "min"),
    ("image/loss", "none", "loss", "image", "", "min"),
    ("audio/loss", "none", "loss", "audio", "", "min"),
    ("video/loss", "none", "loss", "video", "", "min"),
    ("train/text/loss", "train", "loss", "text", "", "min"),
    ("task_a/loss", "none", "loss", "task_a", "", "min"),
    ("mnli/loss", "none", "loss", "mnli", "", "min"),
    ("lm_loss", "none", "loss", "lm", "", "min"),
    ("policy_loss", "none", "loss", "policy", "", "min"),
    ("value_loss", "none", "loss", "value", "", "min"),
    ("total_loss", "none", "loss", "main", "", "min"),
    ("ppl", "none", "perplexity", "main", "", "min"),
    ("perplexity", "none", "perplexity", "main", "", "min"),
    ("val_perplexity", "val", "perplexity", "main", "", "min"),
    ("eval_wer", "val", "accuracy", "main", "", "min"),
    ("cer", "none", "accuracy", "main", "", "min"),
    ("eval_rouge-1", "val", "accuracy", "main", "", "max"),
    ("rougeL", "none", "accuracy", "main", "", "max"),
    ("bleu", "none", "accuracy", "main", "", "max"),
    ("f1", "none", "accuracy", "main", "", "max"),
    ("accuracy", "none", "accuracy", "main", "", "max"),
    ("mean_token_accuracy", "none", "accuracy", "main", "", "max"),
    ("eval_precision", "val", "accuracy", "main", "", "max"),
    ("tokens_per_sec", "none", "throughput", "main", "", "max"),
    ("tok/sec", "none", "throughput", "main", "", "max"),
    ("train_samples_per_second", "train", "throughput", "main", "", "max"),
    ("throughput", "none", "throughput", "main", "", "max"),
    ("mfu", "none", "throughput", "main", "", "max"),
    ("dt", "none", "throughput", "main", "", "min"),
    ("step_avg", "none", "throughput", "main", "", "min"),
    ("epoch", "none", "other", "main", "", "none"),
    ("step", "none", "other", "main", "", "none"),
    ("_runtime", "none", "other", "main", "", "none"),
    ("_timestamp", "none", "other", "main", "", "none"),
    ("num_tokens", "none", "other", "main", "", "none"),
    ("total_flos", "none", "other", "main", "", "none"),
    ("eval_runtime", "val", "other", "main", "", "none"),
    ("eval_gen_len", "val", "other", "main", "", "none"),
    ("frac_reward_zero_std", "none", "other", "main", "", "none"),
    ("clip_fraction", "none", "other", "main", "", "none"),
    ("completions/mean_length", "none", "other", "policy", "", "none"),
    ("advantage_mean", "none", "other", "main", "", "none"),
    ("epoch_time", "none", "other", "main", "", "none"),
    ("gpu_memory_allocated", "none", "other", "main", "", "none"),
    ("zzz_custom_thing", "none", "other", "main", "", "none"),
]


@pytest.mark.parametrize("name,split,kind,objective,role,direction", CASES, ids=[c[0] for c in CASES])
def test_convention(name, split, kind, objective, role, direction):
    r = infer(name)
    assert (r.split, r.kind, r.objective, r.role, r.direction) == (split, kind, objective, role, direction), name
    assert r.inferred


def test_values_are_in_the_vocabularies():
    for c in CASES:
        r = infer(c[0])
        assert r.split in SPLITS and r.kind in KINDS and r.direction in DIRECTIONS


def test_mapping_file_overrides_and_globs(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text('[metrics."val/loss"]\nsplit = "val"\nkind = "loss"\nobjective = "lm"\n'
                 '[metrics."eval_*_score"]\nkind = "accuracy"\n'
                 '[metrics."eval_*"]\nrole = "held"\n')
    m = load_mapping(f)
    r = m.role("val/loss")
    assert (r.objective, r.inferred) == ("lm", False)
    r = m.role("eval_x_score")  # first matching pattern in file order
    assert (r.kind, r.direction, r.role, r.inferred) == ("accuracy", "max", "", False)
    assert m.role("eval_loss").role == "held"
    assert m.role("loss").inferred


@pytest.mark.parametrize("text,needle", [
    ('[metrics."loss"]\nkinds = "loss"\n', "unknown key(s) 'kinds'; known: split, kind, objective, role, direction"),
    ('[metrics."loss"]\nkind = "lossy"\n', "kind = 'lossy'; expected one of loss, perplexity"),
    ('[metric."loss"]\nkind = "loss"\n', "unknown table(s) 'metric'"),
    ('[metrics."loss"\n', "not valid TOML"),
    ('[metrics]\nloss = 3\n', "must be a table"),
])
def test_bad_mapping_names_the_file_and_known_keys(tmp_path, text, needle):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_mapping(f)
    assert needle in str(info.value) and str(f) in str(info.value)


_LOSSY = re.compile(r"loss|nll|xent|mse|mae|bpb|bpc|l1|l2|huber|entropy", re.I)


@pytest.mark.slow
def test_real_corpus_metric_names(real_dir):
    """Every metric name of the real corpus: no name becomes a loss unless it is one, and
    the inference is stable for the names whose meaning is known."""
    from engine.ingest import read_source
    names = set()
    for folder in sorted(p for p in real_dir.iterdir() if p.is_dir()):
        for parsed in read_source(folder):
            names |= set(parsed.table.column("metric").unique().to_pylist())
    assert len(names) > 100
    for n in sorted(names):
        r = infer(n)
        if r.kind == "loss":
            assert _LOSSY.search(n), f"{n!r} inferred as a loss"
        if "loss" in n.lower() and "kl" not in n.lower():
            assert r.kind == "loss" and r.direction == "min", (n, r)
        if re.search(r"(^|[/_])lr($|[-_/])|learning_rate", n, re.I):
            assert r.kind == "lr", (n, r)
        if re.search(r"acc", n, re.I):
            assert r.kind == "accuracy" and r.direction == "max", (n, r)


# ---------------------------------------------------------------- run-level: train by partner

@pytest.mark.parametrize("names,train,none", [
    (["loss", "eval_loss", "grad_norm", "learning_rate"], {"loss"}, {"grad_norm", "learning_rate"}),
    (["loss", "eval_g0_loss", "eval_g1_loss"], {"loss"}, set()),  # HF with several eval sets
    (["loss", "mean_token_accuracy", "eval_loss", "eval_mean_token_accuracy"], {"loss", "mean_token_accuracy"}, set()),
    (["loss", "val_loss", "accuracy", "val_accuracy"], {"loss", "accuracy"}, set()),  # Keras history
    (["loss", "mean_token_accuracy", "eval_loss"], {"loss"}, {"mean_token_accuracy"}),  # no accuracy partner
    (["loss", "grad_norm"], set(), {"loss", "grad_norm"}),  # no held-out curve: stays unsplit
    (["loss", "eval_runtime", "eval_wer"], set(), {"loss"}),  # held-out curves of other kinds
    (["aux_loss", "eval_loss"], set(), {"aux_loss"}),  # eval_loss is not eval_ + aux_loss
])
def test_unsplit_curve_with_held_out_partner_is_train(names, train, none):
    from engine.infer import infer_run
    roles = infer_run(names)
    assert set(roles) == set(names)
    assert {n for n, r in roles.items() if r.split == "train"} == train
    assert none <= {n for n, r in roles.items() if r.split == "none"}
    for n in names:  # only the split changes
        a, b = roles[n], infer(n)
        assert (a.kind, a.objective, a.role, a.direction) == (b.kind, b.objective, b.role, b.direction)


def test_train_by_partner_keeps_user_mapped_roles(tmp_path):
    from engine.infer import train_by_partner
    f = tmp_path / "m.toml"
    f.write_text('[metrics."loss"]\nobjective = "main"\n')
    m = load_mapping(f)
    roles = train_by_partner({"loss": m.role("loss"), "eval_loss": m.role("eval_loss")})
    assert roles["loss"].split == "none" and not roles["loss"].inferred
    assert train_by_partner({"loss": infer("loss"), "eval_loss": infer("eval_loss")})["loss"].split == "train"
