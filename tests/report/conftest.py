"""A small store for the report tests, built once per session.

Runs (data/generate.py scenarios, fixed seeds):
- HOSTILE_RUN: nonfinite scenario (train/loss holds a non-finite value), diagnosed;
  its grad_norm metric is renamed to HOSTILE_METRIC.
- RL_RUN: reward_hacking scenario (reward, KL, gold reward), diagnosed; name with quotes,
  a path and '</script><!--'.
- "overfit": overfitting scenario (train/val loss and accuracy), diagnosed.
- PLAIN_RUN: healthy_pretrain, ingested after the diagnosis: no analysis tables.
"""

from __future__ import annotations

import pytest

from engine.ingest import table as table_importer
from tests.test_generate import gen

HOSTILE_RUN = "<script>alert(1)</script>"
HOSTILE_METRIC = "gn<img src=x onerror=alert(2)>&\"'"
RL_RUN = "rl \"run\" /a/../b </script><!--"
PLAIN_RUN = "plain/pretrain"


def _ingest(store, tmp, run, name):
    path = tmp / f"{abs(hash(name))}.parquet"
    gen.curves_frame(run).write_parquet(path)
    store.ingest(path, mods=[table_importer])
    store.write_table("metrics", gen.metrics_frame(run), runs=[run.name])


def _renamed(run, old, new):
    run.curves[new] = run.curves.pop(old)
    run.metrics[new] = run.metrics.pop(old)
    return run


@pytest.fixture(scope="session")
def report_store(tmp_path_factory):
    from engine.diagnose import diagnose
    from engine.store import Store

    tmp = tmp_path_factory.mktemp("report_store")
    store = Store(tmp / "store")
    _ingest(store, tmp, _renamed(gen.make_run("nonfinite", 3, HOSTILE_RUN), "grad_norm", HOSTILE_METRIC), HOSTILE_RUN)
    _ingest(store, tmp, gen.make_run("reward_hacking", 3, RL_RUN), RL_RUN)
    _ingest(store, tmp, gen.make_run("overfitting", 3, "overfit"), "overfit")
    diagnose(store)
    _ingest(store, tmp, gen.make_run("healthy_pretrain", 3, PLAIN_RUN), PLAIN_RUN)
    return store
