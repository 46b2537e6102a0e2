"""Records to JSON Lines: sources (iterables of dicts, pandas DataFrames, Hugging Face datasets)
and the encoding of one record, with errors that name the record and the field."""

from __future__ import annotations

import datetime
import decimal
import json
import math
from collections.abc import Iterator, Mapping, Sized
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

from .errors import InvalidRecord

#: Rows fetched from a DataFrame or a Dataset at a time.
BATCH_ROWS = 1000


@dataclass
class Source:
    """Where an import's records come from."""

    #: For the import's summary and the audit trail.
    name: str
    #: Number of records when known (for the progress bar).
    total: Optional[int]
    #: Whether `rows()` can be called again to read every record anew.
    replayable: bool
    #: A fresh iterator over the records.
    rows: Callable[[], Iterator[Any]]


def _module(obj: object) -> str:
    return type(obj).__module__ or ""


def _dataframe_rows(df: Any) -> Iterator[Any]:
    for start in range(0, len(df), BATCH_ROWS):
        yield from df.iloc[start : start + BATCH_ROWS].to_dict(orient="records")


def _dataset_rows(ds: Any) -> Iterator[Any]:
    for batch in ds.iter(batch_size=BATCH_ROWS):
        columns = list(batch.keys())
        n = len(batch[columns[0]]) if columns else 0
        for i in range(n):
            yield {c: batch[c][i] for c in columns}


def source_of(records: Any, name: Optional[str] = None) -> Source:
    """The source for `records`: a pandas DataFrame, a `datasets.Dataset` or `IterableDataset`,
    or any iterable of mappings (a list, a generator, ...)."""
    kind = type(records).__name__
    mod = _module(records)
    if mod.startswith("pandas") and hasattr(records, "iloc") and hasattr(records, "columns"):
        return Source(name or "pandas.DataFrame", len(records), True, lambda: _dataframe_rows(records))
    if mod.startswith("datasets"):
        if kind in ("DatasetDict", "IterableDatasetDict"):
            splits = [str(k) for k in records.keys()]
            first = splits[0] if splits else "train"
            raise TypeError(f"records is a {kind}; import one split, e.g. records[{first!r}] (splits: {', '.join(splits)})")
        if hasattr(records, "iter") and hasattr(records, "num_rows") and kind == "Dataset":
            return Source(name or "datasets.Dataset", records.num_rows, True, lambda: _dataset_rows(records))
        return Source(name or f"datasets.{kind}", None, True, lambda: iter(records))
    if isinstance(records, Mapping):
        raise TypeError("records is a single mapping; pass an iterable of them (e.g. [record])")
    if isinstance(records, (str, bytes, bytearray)):
        raise TypeError("records must be an iterable of mappings, not a string")
    if not isinstance(records, Iterable):
        raise TypeError(f"records must be an iterable of mappings, not {kind}")
    if isinstance(records, Iterator):
        it = records
        return Source(name or f"python {kind}", None, False, lambda: it)
    total = len(records) if isinstance(records, Sized) else None
    return Source(name or f"python {kind}", total, True, lambda: iter(records))


def _default(value: Any) -> Any:
    """JSON form of values the json module does not know (numpy, pandas, dates)."""
    kind = type(value).__name__
    if kind in ("NAType", "NaTType"):
        return None
    if hasattr(value, "tolist") and _module(value).startswith("numpy"):
        return value.tolist()  # numpy scalars and arrays
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"a {kind} has no JSON form")


def _clean(value: Any) -> Any:
    """`value` with NaN (pandas' missing value) as None; infinities refused."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            raise ValueError("infinity has no JSON form")
        return value
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if _module(value).startswith("numpy") and hasattr(value, "tolist"):
        return _clean(value.tolist())
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_default, allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def encode(record: Any, index: int) -> bytes:
    """One JSON line (with its newline) for `record`, the `index`-th (1-based) of the import."""
    if not isinstance(record, Mapping):
        raise InvalidRecord(index, f"expected a mapping such as a dict, got {type(record).__name__}")
    try:
        try:
            line = _dumps(record)
        except ValueError:  # NaN or infinity somewhere
            line = _dumps(_clean(record))
    except (TypeError, ValueError) as e:
        # Find the field at fault, so the message names it.
        for key, value in record.items():
            try:
                _dumps(_clean(value))
            except (TypeError, ValueError) as inner:
                raise InvalidRecord(index, str(inner), field=str(key)) from None
        raise InvalidRecord(index, str(e)) from None
    return line.encode("utf-8") + b"\n"
