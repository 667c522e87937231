"""The registry walker: every rule carries its code, summary, docstring headings,
defaults table and fires__/quiet__ tests."""

import ast
import re
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.rules import RULES, run_rules
from engine.rules.base import DOC_HEADINGS, RunContext, load_thresholds

HERE = Path(__file__).resolve().parent


def _test_names() -> set[str]:
    names = set()
    for f in HERE.glob("test_*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                names.add(node.name)
    return names


@pytest.mark.parametrize("fn", RULES, ids=lambda f: f.rule.code)
def test_rule_is_complete(fn):
    r = fn.rule
    assert re.fullmatch(r"[A-Z][A-Z0-9_]*", r.code), r.code
    assert r.summary and r.summary.endswith(".") and "\n" not in r.summary, r.summary
    assert r.scope in ("objective", "cross", "summary"), r.scope
    for heading in DOC_HEADINGS:
        assert heading in r.doc, f"{r.code}: docstring lacks {heading!r}"
    th = load_thresholds()
    assert r.code in th, f"{r.code}: no [{r.code}] table in engine/thresholds.toml"
    names = _test_names()
    low = r.code.lower()
    fires = [n for n in names if n.startswith(f"test_fires__") and low in n]
    quiet = [n for n in names if n.startswith(f"test_quiet__") and low in n]
    assert fires, f"{r.code}: no test_fires__...{low}... test"
    assert quiet, f"{r.code}: no test_quiet__...{low}... test"


def test_codes_unique_and_every_table_used():
    codes = [fn.rule.code for fn in RULES]
    assert len(codes) == len(set(codes)), codes
    tables = set(load_thresholds())
    assert tables <= set(codes), f"tables without a rule: {sorted(tables - set(codes))}"


def test_thresholds_toml_has_comment_per_key():
    lines = (Path(__file__).resolve().parents[2] / "engine" / "thresholds.toml").read_text().splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith("#"):
            key = line.split("=")[0].strip()
            assert re.fullmatch(r"[a-z][a-z0-9_]*", key), f"thresholds.toml line {i + 1}: key {key!r} not snake_case"
            commented = "#" in line or (i and lines[i - 1].lstrip().startswith("#"))
            assert commented, f"thresholds.toml line {i + 1}: {key} has no comment"


def test_user_override_unknown_key_names_file_table_and_known(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text("[HEALTHY]\nmin_pointz = 3\n")
    with pytest.raises(ConfigError) as e:
        load_thresholds(f)
    msg = str(e.value)
    assert "mine.toml" in msg and "[HEALTHY]" in msg and "min_points" in msg


def test_user_override_applies(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text("[HEALTHY]\nmin_points = 3\n")
    assert load_thresholds(f)["HEALTHY"].min_points == 3
    assert load_thresholds()["HEALTHY"].min_points != 3


def test_empty_context_gives_no_findings():
    assert run_rules(RunContext("r")) == []


def test_rule_errors_name_rule_and_run():
    from engine.rules.base import rule

    @rule(code="HEALTHY", summary="Boom.")
    def boom(ctx, th):
        """Evidence: Why: Advice: Known false alarms:"""
        raise ZeroDivisionError("x")

    with pytest.raises(RuntimeError, match="HEALTHY.*'r1'"):
        run_rules(RunContext("r1"), rules=[boom])


def _f(code, metrics, run="r", start=0, end=10):
    from engine.rules.base import Finding
    return Finding(run=run, code=code, severity="info" if code != "OVERFITTING" else "warning", confidence=0.8,
                   metrics=metrics, step_start=start, step_end=end, message="m", evidence={}, advice="")


def test_precedence_folds_train_loss_advice_into_overfitting_and_underfitting():
    from engine.rules import apply_precedence
    over = _f("OVERFITTING", ["loss", "val_loss"])
    under = _f("UNDERFITTING", ["aux/loss", "aux/acc"])
    still = _f("STILL_IMPROVING", ["loss"], start=5)
    conv = _f("CONVERGED", ["loss", "val_loss"])
    early = _f("CONVERGED_EARLY", ["aux/loss"])
    other_metric = _f("STILL_IMPROVING", ["text/loss"])  # not named by a superseding finding: kept
    partial = _f("CONVERGED", ["loss", "lm/val"])  # one metric outside OVERFITTING's: kept
    other_run = _f("STILL_IMPROVING", ["loss"], run="other")  # another run's finding: kept
    spike = _f("LOSS_SPIKE", ["loss"])  # not a superseded code: kept
    got = apply_precedence([over, under, still, conv, early, other_metric, partial, other_run, spike])
    assert got == [over, under, other_metric, partial, other_run, spike]
    assert [(d["code"], d["metrics"], d["step_start"]) for d in over.evidence["supersedes"]] == [
        ("STILL_IMPROVING", ["loss"], 5), ("CONVERGED", ["loss", "val_loss"], 0)]
    assert [d["code"] for d in under.evidence["supersedes"]] == ["CONVERGED_EARLY"]


def test_precedence_without_superseding_finding_keeps_everything():
    from engine.rules import apply_precedence
    fs = [_f("STILL_IMPROVING", ["loss"]), _f("CONVERGED", ["val_loss"]), _f("HEALTHY", ["loss"])]
    assert apply_precedence(list(fs)) == fs


def test_still_improving_supersedes_converged_on_the_same_curves():
    from engine.rules import apply_precedence
    still = _f("STILL_IMPROVING", ["loss", "val_loss"])
    early = _f("CONVERGED_EARLY", ["loss"])  # the same curve: "stop early" contradicts it
    conv_other = _f("CONVERGED", ["aux/loss"])  # another curve: kept
    got = apply_precedence([still, early, conv_other])
    assert got == [still, conv_other]
    assert [d["code"] for d in still.evidence["supersedes"]] == ["CONVERGED_EARLY"]
