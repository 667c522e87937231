"""Arrow schemas of every table losscope stores, with their versions.

Imports pyarrow only. Each table has one schema and one integer version; the version
is written into the Parquet file metadata under ``losscope.schema`` and
``losscope.version`` and checked on read by :func:`check_version`.
"""

from __future__ import annotations

import pyarrow as pa

META_TABLE = b"losscope.table"
META_VERSION = b"losscope.version"

_TS = pa.timestamp("us", tz="UTC")

CURVES = pa.schema(
    [
        pa.field("run", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("step", pa.int64(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("wall_time", _TS, nullable=True),
    ]
)

METRICS = pa.schema(
    [
        pa.field("run", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),  # train, val, test, none
        pa.field("kind", pa.string(), nullable=False),  # loss, perplexity, accuracy, reward, kl, grad_norm, lr, throughput, other
        pa.field("objective", pa.string(), nullable=False),
        pa.field("role", pa.string(), nullable=False),  # e.g. proxy, gold, chosen, rejected, "" when none
        pa.field("direction", pa.string(), nullable=False),  # min, max, none
        pa.field("inferred", pa.bool_(), nullable=False),  # False when set by a user mapping
    ]
)

RUNS = pa.schema(
    [
        pa.field("run", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("format", pa.string(), nullable=False),
        pa.field("ingested_at", _TS, nullable=False),
        pa.field("points", pa.int64(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("replaced", pa.int64(), nullable=False),  # repeated (metric, step) rows replaced by a later one
        pa.field("attributes", pa.string(), nullable=False),  # JSON object: params, config, tags
    ]
)

EVENTS = pa.schema(
    [
        pa.field("run", pa.string(), nullable=False),
        pa.field("step", pa.int64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # lr_change, data_refresh, resume, phase, note
        pa.field("detail", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # "log" or "user"
    ]
)

FEATURES = pa.schema(
    [
        pa.field("run", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("n_points", pa.int64()),
        pa.field("n_nonfinite", pa.int64()),
        pa.field("first_nonfinite_step", pa.int64()),
        pa.field("step_first", pa.int64()),
        pa.field("step_last", pa.int64()),
        pa.field("median_spacing", pa.float64()),
        pa.field("noise", pa.float64()),
        pa.field("snr", pa.float64()),
        pa.field("oscillation", pa.float64()),
        pa.field("initial_value", pa.float64()),
        pa.field("best_value", pa.float64()),
        pa.field("best_step", pa.int64()),
        pa.field("final_value", pa.float64()),
        pa.field("final_step", pa.int64()),
        pa.field("improvement_rel", pa.float64()),
        pa.field("tail_slope", pa.float64()),
        pa.field("tail_slope_se", pa.float64()),
        pa.field("trend_z", pa.float64()),
        pa.field("trend_p", pa.float64()),
        pa.field("fit_l_inf", pa.float64()),
        pa.field("fit_a", pa.float64()),
        pa.field("fit_alpha", pa.float64()),
        pa.field("fit_l_inf_se", pa.float64()),
        pa.field("fit_ok", pa.bool_()),
        pa.field("expected_gain_rel", pa.float64()),
        pa.field("step_90pct", pa.int64()),
        pa.field("n_spikes", pa.int64()),
        pa.field("n_segments", pa.int64()),
        pa.field("extra", pa.string()),  # JSON object for figures not worth a column
    ]
)

SEGMENTS = pa.schema(
    [
        pa.field("run", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("step_start", pa.int64(), nullable=False),
        pa.field("step_end", pa.int64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # descent, plateau, ascent
        pa.field("slope", pa.float64()),
        pa.field("slope_se", pa.float64()),
        pa.field("level", pa.float64()),
    ]
)

SPIKES = pa.schema(
    [
        pa.field("run", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("step", pa.int64(), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("height", pa.float64()),  # in noise units
        pa.field("recovery_steps", pa.int64()),  # null when never recovered
        pa.field("recovered", pa.bool_()),
        pa.field("recovery_class", pa.string()),  # fast, slow, never
    ]
)

FINDINGS = pa.schema(
    [
        pa.field("run", pa.string(), nullable=False),
        pa.field("code", pa.string(), nullable=False),
        pa.field("severity", pa.string(), nullable=False),  # info, warning, critical
        pa.field("confidence", pa.float64(), nullable=False),
        pa.field("metrics", pa.list_(pa.string()), nullable=False),
        pa.field("step_start", pa.int64()),
        pa.field("step_end", pa.int64()),
        pa.field("message", pa.string(), nullable=False),
        pa.field("evidence", pa.string(), nullable=False),  # JSON object
        pa.field("advice", pa.string(), nullable=False),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "curves": CURVES,
    "metrics": METRICS,
    "runs": RUNS,
    "events": EVENTS,
    "features": FEATURES,
    "segments": SEGMENTS,
    "spikes": SPIKES,
    "findings": FINDINGS,
}

# Version per table; bump when a schema changes incompatibly. Readers accept
# versions in [MIN_READABLE[t], VERSIONS[t]].
VERSIONS: dict[str, int] = {name: 1 for name in TABLES}
MIN_READABLE: dict[str, int] = {name: 1 for name in TABLES}


class SchemaVersionError(ValueError):
    """A stored file has a table name or version this losscope cannot read."""


def with_metadata(table: str) -> pa.Schema:
    """The schema of ``table`` with its name and version in the metadata."""
    schema = TABLES[table]
    return schema.with_metadata(
        {META_TABLE: table.encode(), META_VERSION: str(VERSIONS[table]).encode()}
    )


def check_version(table: str, metadata: dict | None, where: str) -> int:
    """Check the metadata of a stored file for ``table``; return its version.

    Raises SchemaVersionError naming ``where`` when the file is not a losscope table,
    is another table, or has a version outside what this losscope reads.
    """
    metadata = metadata or {}
    name = metadata.get(META_TABLE)
    raw = metadata.get(META_VERSION)
    if name is None or raw is None:
        raise SchemaVersionError(
            f"{where}: no losscope schema metadata; expected table {table!r}. "
            "The file was not written by losscope."
        )
    if name.decode() != table:
        raise SchemaVersionError(f"{where}: holds table {name.decode()!r}, expected {table!r}.")
    try:
        version = int(raw.decode())
    except ValueError:
        raise SchemaVersionError(f"{where}: schema version {raw!r} is not an integer.") from None
    lo, hi = MIN_READABLE[table], VERSIONS[table]
    if not lo <= version <= hi:
        raise SchemaVersionError(
            f"{where}: {table} has schema version {version}; this losscope reads {lo}-{hi}. "
            + ("Upgrade losscope." if version > hi else "Re-ingest the sources.")
        )
    return version
