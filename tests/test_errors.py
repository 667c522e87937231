"""Every LosscopeError subclass survives a pickle round trip with its fields."""

from __future__ import annotations

import pickle

import pytest

import engine.errors as errors


def _all_subclasses(cls):
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_all_subclasses(sub))
    return out


CLASSES = sorted(set(_all_subclasses(errors.LosscopeError)), key=lambda c: c.__name__)


def test_the_known_classes_are_covered():
    names = {c.__name__ for c in CLASSES}
    assert {"LosscopeError", "IngestError", "UnknownFormatError", "StoreError", "ConfigError"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=[c.__name__ for c in CLASSES])
@pytest.mark.parametrize("fields", [
    dict(),
    dict(path="logs/trainer_state.json", line=9313, run="a/../../b", metric="val/loss", step=2**62),
    dict(path="x.csv", line=None, run=None, metric="<script>", step=0),
])
def test_pickle_round_trip(cls, fields):
    e = cls("column \"step\" holds '4.2e3.1'; expected an integer step.", **fields)
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is cls
    for f in ("reason", "path", "line", "run", "metric", "step"):
        assert getattr(back, f) == getattr(e, f), f
    assert str(back) == str(e)
    assert isinstance(back, errors.LosscopeError)
