"""Lightning CSVLogger importer: the corpus' three versions (a resume and a restart) and
synthetic folders for the edge cases."""

import math

import polars as pl
import pytest

from engine.errors import IngestError
from engine.ingest import lightning
from engine.ingest.base import PARSED_SCHEMA

LOGS = "lightning_csv/slm-training-wikitext103/lightning_logs"


def frame(p):
    return pl.from_arrow(p.table)


def test_real_folder_resume_and_restart(real_dir):
    path = real_dir / LOGS
    assert lightning.sniff(path) and lightning.sniff(path.parent)
    p = lightning.read(path)
    assert p.table.schema == PARSED_SCHEMA and p.format == "lightning_csv"
    df = frame(p)
    assert p.runs == ["slm-training-wikitext103-v0", "slm-training-wikitext103-v7"]
    assert df.height == 8532 + 3414 + 660
    counts = {(r, m): n for r, m, n in df.group_by("run", "metric").len().iter_rows()}
    v0 = "slm-training-wikitext103-v0"
    assert counts[(v0, "train_loss_step")] == 2814 + 1126
    assert counts[(v0, "val_loss")] == 10 + 4
    assert counts[(v0, "train_loss_epoch")] == 14
    assert counts[("slm-training-wikitext103-v7", "train_loss_step")] == 220
    assert ("slm-training-wikitext103-v7", "val_loss") not in counts
    assert [(e.run, e.step, e.kind) for e in p.events] == [(v0, 140749, "resume")]
    val = df.filter((pl.col("run") == v0) & (pl.col("metric") == "val_loss"))
    assert val["step"][9] == 140739 and val["value"][9] == pytest.approx(3.570486, abs=1e-6)
    assert val["step"][10] == 140749 + 14064 and val["value"][10] == pytest.approx(3.5629, abs=1e-4)
    assert val["value"][-1] == pytest.approx(3.604208, abs=1e-6) and val["step"][-1] == 197035
    assert val["value"][0] == pytest.approx(4.132572, abs=1e-6)
    v7 = df.filter((pl.col("run") == "slm-training-wikitext103-v7") & (pl.col("metric") == "train_loss_step"))
    assert v7["step"][0] == 49 and v7["step"][-1] == 10999
    assert v7["value"][0] == pytest.approx(7.6820597648620605, rel=1e-15)
    a = p.attributes[v0]
    assert a["hparams"]["num_epochs"] == 20  # the latest version's
    assert a["versions"]["version_0"]["hparams"]["num_epochs"] == 10
    assert a["versions"]["version_0"]["rows"] == 2834 and a["versions"]["version_5"]["rows"] == 1134
    assert a["versions"]["version_5"]["first_step"] == 140749
    assert a["hparams"]["lr"] == 0.0002363235740126483 and a["hparams"]["use_experimental"] is True
    # the epoch column is a curve
    ep = df.filter((pl.col("run") == v0) & (pl.col("metric") == "epoch"))
    assert ep["value"][0] == 0.0 and ep["value"][-1] == 13.0


def test_real_single_file(real_dir):
    f = real_dir / LOGS / "version_5/metrics.csv"
    assert lightning.sniff(f)
    p = lightning.read(f)
    df = frame(p)
    assert p.runs == ["slm-training-wikitext103-v5"] and p.events == []
    assert df.filter(pl.col("metric") == "train_loss_step").height == 1126
    assert df["step"].min() == 140749
    # four steps carry both a train (epoch) row and a val row
    both = (df.filter(pl.col("metric").is_in(["train_loss_epoch", "val_loss"])).group_by("step")
            .agg(pl.col("metric").n_unique().alias("k")).filter(pl.col("k") == 2))
    assert both.height == 4


def test_sniff_negative(real_dir, tmp_path):
    assert not lightning.sniff(real_dir / "plain_csv/core-collapse-leukemia-cnns/training_metrics.csv")
    assert not lightning.sniff(real_dir / "hf_trainer_state")
    assert not lightning.sniff(tmp_path)


def make_version(root, n, rows, header="epoch,step,train_loss,val_loss", hparams=None):
    d = root / "lightning_logs" / f"version_{n}"
    d.mkdir(parents=True)
    (d / "metrics.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    if hparams is not None:
        (d / "hparams.yaml").write_text(hparams)
    return d


def test_restart_vs_resume_and_version_order(tmp_path):
    root = tmp_path / "exp"
    make_version(root, 0, ["0,9,2.0,", "0,9,,2.5", "1,19,1.5,"])
    make_version(root, 10, ["0,9,3.0,", "0,19,2.8,"])          # restarts: a new run
    make_version(root, 2, ["2,29,1.2,", "2,29,,nan", "3,39,inf,"])  # continues version_0 (numeric order: 0, 2, 10)
    p = lightning.read(root)
    df = frame(p)
    assert p.runs == ["exp-v0", "exp-v10"]
    assert [(e.run, e.step) for e in p.events] == [("exp-v0", 29)]
    r0 = df.filter((pl.col("run") == "exp-v0") & (pl.col("metric") == "train_loss"))
    assert r0["step"].to_list() == [9, 19, 29, 39] and r0["value"][-1] == math.inf
    v = df.filter((pl.col("run") == "exp-v0") & (pl.col("metric") == "val_loss"))["value"].to_list()
    assert v[0] == 2.5 and math.isnan(v[1])
    assert p.attributes["exp-v0"]["versions"].keys() == {"version_0", "version_2"}


def test_bad_cell_names_file_line_column(tmp_path):
    make_version(tmp_path, 0, ["0,9,2.0,", "0,19,abc,", "0,29,1.0,"])
    with pytest.raises(IngestError) as e:
        lightning.read(tmp_path / "lightning_logs")
    assert "version_0/metrics.csv, line 3: column \"train_loss\" holds 'abc'" in str(e.value)
    with pytest.raises(IngestError, match="no Lightning version folder"):
        lightning.read(tmp_path / "nothing")


def test_hparams_parser():
    y = ("lr: 1.0e-3\nlayers: 12\nname: 'gpt'\nflag: false\nnothing: null\noptimizer:\n  kind: adamw\n"
         "  betas:\n  - 0.9\n  - 0.95\nobj: !!python/object:foo.Bar {}\nwd: .inf\n# comment\ntext: hello world\n")
    h = lightning.parse_simple_yaml(y)
    assert h["lr"] == 1e-3 and h["layers"] == 12 and h["name"] == "gpt" and h["flag"] is False
    assert h["nothing"] is None and h["optimizer.kind"] == "adamw" and h["optimizer.betas"] == [0.9, 0.95]
    assert h["obj"].startswith("!!python") and h["wd"] == math.inf and h["text"] == "hello world"
