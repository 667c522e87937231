"""The errors losscope raises for bad input. All derive from LosscopeError.

Each carries fields (path, line, run, metric, step, reason) so that batch jobs can put
failures in a table, and each survives a pickle round trip (they cross process
boundaries in the batch runner).
"""

from __future__ import annotations


class LosscopeError(Exception):
    """Base of every error about the user's input, store or configuration.

    The CLI maps it to exit code 2 and prints ``str(error)``: one line that names
    where (file, line or byte, run, metric, step), what was found and what to do.
    """

    def __init__(
        self,
        reason: str,
        *,
        path: str | None = None,
        line: int | None = None,
        run: str | None = None,
        metric: str | None = None,
        step: int | None = None,
    ):
        self.reason = reason
        self.path = None if path is None else str(path)
        self.line = line
        self.run = run
        self.metric = metric
        self.step = step
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.path is not None:
            where.append(self.path)
        if self.line is not None:
            where.append(f"line {self.line:,}")
        if self.run is not None:
            where.append(f"run {self.run!r}")
        if self.metric is not None:
            where.append(f"metric {self.metric!r}")
        if self.step is not None:
            where.append(f"step {self.step:,}")
        return (", ".join(where) + ": " if where else "") + self.reason

    def __reduce__(self):
        kwargs = dict(path=self.path, line=self.line, run=self.run, metric=self.metric, step=self.step)
        return (_rebuild, (type(self), self.reason, kwargs))


def _rebuild(cls, reason, kwargs):
    return cls(reason, **kwargs)


class IngestError(LosscopeError):
    """A source file could not be read: truncated, corrupt, non-numeric, unknown format."""


class UnknownFormatError(IngestError):
    """No importer recognises the file or folder."""


class StoreError(LosscopeError):
    """The store is unreadable, of an unknown schema version, or a name is unsafe."""


class ConfigError(LosscopeError):
    """A configuration or mapping file is invalid."""
