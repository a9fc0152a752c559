"""Walk-forward folds in time order, with a gap against label leakage.

A fold trains on dates strictly before its test window and tests on the next
``test_size`` dates. Between the two, ``gap`` dates are left out: a label at date *t*
looks ``horizon`` bars ahead, so with ``gap >= horizon`` no training label reaches into
the test window. Nothing is shuffled; test windows never overlap and follow each other.

>>> days = list(range(10))
>>> [(f.train_start, f.train_end, f.test_start, f.test_end)
...  for f in walk_forward_folds(days, n_folds=2, test_size=2, gap=1, min_train=3)]
[(0, 4, 6, 7), (0, 6, 8, 9)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from breadthflow.core.errors import InvalidInputError


@dataclass(frozen=True)
class Fold:
    """One fold: inclusive date bounds of its training and test windows."""

    number: int
    train_start: Any
    train_end: Any
    test_start: Any
    test_end: Any

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def walk_forward_folds(
    dates: Sequence[Any],
    n_folds: int,
    test_size: int,
    gap: int,
    min_train: int = 20,
    train_size: int | None = None,
) -> list[Fold]:
    """The last ``n_folds × test_size`` of the sorted unique ``dates`` cut into
    consecutive test windows; each trains on everything before it minus ``gap`` dates
    (expanding), or on the ``train_size`` dates before that gap (rolling).

    Refuses (one line) settings that leave a fold fewer than ``min_train`` training dates.
    """
    for name, value, least in (
        ("n_folds", n_folds, 1), ("test_size", test_size, 1), ("gap", gap, 0),
        ("min_train", min_train, 1),
    ):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise InvalidInputError(
                f"invalid {name}={value!r} — expected a whole number >= {least}"
            )
    if train_size is not None and (not isinstance(train_size, int) or train_size < min_train):
        raise InvalidInputError(
            f"invalid train_size={train_size!r} — expected a whole number >= min_train={min_train}"
        )
    days = sorted(set(dates))
    first_test = len(days) - n_folds * test_size
    if first_test - gap < min_train:
        raise InvalidInputError(
            f"{len(days)} dates are too few for {n_folds} folds of {test_size} test dates, a "
            f"gap of {gap} and at least {min_train} training dates — fewer folds, shorter "
            "tests or a longer date range"
        )
    folds = []
    for k in range(n_folds):
        test_start = first_test + k * test_size
        train_end = test_start - gap - 1
        train_start = 0 if train_size is None else max(0, train_end - train_size + 1)
        folds.append(
            Fold(
                number=k + 1,
                train_start=days[train_start],
                train_end=days[train_end],
                test_start=days[test_start],
                test_end=days[test_start + test_size - 1],
            )
        )
    return folds
