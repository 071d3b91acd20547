"""The one rule for turning values into JSON, for explanations and for the framework's run files.

Strict JSON: NaN and +-infinity become `null`. Python's `json` would write the bare tokens
`NaN` / `Infinity`, which JSON itself does not allow (JavaScript's `JSON.parse`, Go, jq and
most other readers refuse the file); a string such as "nan" would be read back as text, not as
a number. `null` reads everywhere as "no value". `labs.rundir` (summary.json, metrics.jsonl,
W&B summaries) uses this same function, so a missing number looks the same in every file.
"""

from __future__ import annotations

import math
from os import PathLike
from typing import Any


def jsonable(v: Any) -> Any:
    """`v` as plain JSON-safe Python: numpy scalars, 0-d arrays and 0-d tensors become Python
    numbers, non-finite floats become None, paths become str; dicts, lists and tuples are
    converted item by item. Anything else is returned unchanged."""
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if hasattr(v, "item") and getattr(v, "ndim", None) == 0:  # no numpy / torch import needed
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, PathLike):
        return str(v)
    return v
