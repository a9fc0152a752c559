"""Values made safe for JSON columns on both databases."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any


def json_safe(value: Any) -> Any:
    """JSON without NaN/inf (PostgreSQL's json type refuses them): those become null;
    dates become ISO text and NumPy scalars plain numbers."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # a NumPy scalar
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
