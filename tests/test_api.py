"""The Python API: doctests of engine/api.py, in-memory inputs, `from engine import ...`."""

from __future__ import annotations

import doctest
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

import engine.api as api
from engine.errors import IngestError, LosscopeError


def test_api_doctests_pass():
    res = doctest.testmod(api, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert res.attempted >= 20 and res.failed == 0, res


def test_diagnose_curve_numpy_without_steps_and_pandas_frame():
    rng = np.random.default_rng(3)
    n = 600
    loss = 1.0 + 2.0 * (np.arange(n) + 10.0) ** -0.3 + 0.005 * rng.standard_normal(n)
    loss[400:] += np.linspace(0, 5, n - 400)  # blows up
    found = api.diagnose_curve(None, loss, metric="train/loss")
    assert "DIVERGENCE" in found["code"].to_list(), found
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"metric": "train/loss", "step": np.arange(n), "value": loss})
    found2 = api.diagnose(frame)
    assert found2.drop("run").equals(found.drop("run"))


def test_analyse_curve_returns_polars_tables():
    t = api.analyse_curve(np.arange(300) * 5, np.linspace(2.0, 1.0, 300), metric="val/loss")
    assert {"features", "segments", "spikes"} <= set(t)
    assert all(isinstance(t[k], pl.DataFrame) for k in ("features", "segments", "spikes"))
    assert t["features"]["step_last"][0] == 299 * 5


def test_array_errors_name_the_problem():
    with pytest.raises(IngestError, match="3 steps but 2 values"):
        api.diagnose_curve([1, 2, 3], [1.0, 2.0])
    with pytest.raises(IngestError, match="integers"):
        api.diagnose_curve([1.5, 2.0], [1.0, 2.0])
    with pytest.raises(LosscopeError, match="one-dimensional"):
        api.diagnose_curve(None, np.zeros((2, 2)))


@pytest.mark.parametrize("first", ["import engine.diagnose, engine.analyse", "import engine.cli", "pass"])
def test_from_engine_import_store_diagnose_analyse(first):
    code = (f"{first}\nfrom engine import Store, diagnose, analyse\nimport engine.diagnose as d, engine.analyse as a\n"
            "import numpy as np\n"
            "assert callable(diagnose) and callable(analyse) and hasattr(d, 'diagnose_tables')\n"
            "assert hasattr(a, 'analyse_run') and Store.__name__ == 'Store'\n"
            "f = diagnose(engine.api.curves_frame({'loss': np.linspace(3, 1, 200)}, run='r'))\n"
            "assert f['code'].to_list() == ['HEALTHY'], f\n"
            "t = analyse(engine.api.curves_frame({'loss': np.linspace(3, 1, 200)}, run='r'))\n"
            "assert t['features'].height == 1\n")
    code = "import engine\n" + code.replace("engine.api.curves_frame", "curves_frame").replace(
        "import numpy as np\n", "import numpy as np\nfrom engine import curves_frame\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
