"""losscope's engine: ingest -> store -> analyse -> rules -> results.

``from engine import Store, diagnose, analyse`` gives the Python API of ``engine.api``
(imported on first use, so ``import engine`` and ``losscope --help`` stay fast).

``engine.diagnose`` and ``engine.analyse`` are also the names of modules. Python sets a
package attribute to the submodule whenever that submodule is first imported, which
would silently turn ``from engine import diagnose`` into a module. So both modules are
made callable: ``engine.diagnose(...)`` calls ``engine.api.diagnose`` and
``engine.analyse(...)`` calls ``engine.api.analyse``, while ``engine.diagnose.x`` and
``import engine.diagnose`` keep working as for any module.
"""

from __future__ import annotations

import sys
import types

_API = ("Store", "BatchResult", "analyse_curve", "curves_frame", "diagnose_curve", "ingest_frame", "query",
        "run_batch", "scan", "sql")
_CALLABLE_MODULES = ("diagnose", "analyse")


class _CallableModule(types.ModuleType):
    """A module that is also the API function of the same name."""

    def __call__(self, *args, **kwargs):
        from engine import api
        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)


class _Package(types.ModuleType):
    def __setattr__(self, name, value):
        if name in _CALLABLE_MODULES and isinstance(value, types.ModuleType) and type(value) is types.ModuleType:
            value.__class__ = _CallableModule
        super().__setattr__(name, value)

    def __getattr__(self, name):
        if name in _CALLABLE_MODULES:
            import importlib
            importlib.import_module(f"engine.{name}")  # sets the (callable) attribute
            return self.__dict__[name]
        if name in _API:
            from engine import api
            return getattr(api, name)
        raise AttributeError(f"module 'engine' has no attribute {name!r}")


sys.modules[__name__].__class__ = _Package
for _name in _CALLABLE_MODULES:  # submodules imported before this ran (none in practice)
    _mod = sys.modules.get(f"engine.{_name}")
    if _mod is not None and type(_mod) is types.ModuleType:
        _mod.__class__ = _CallableModule
del _name, _mod

__all__ = ["analyse", "diagnose", *_API]
