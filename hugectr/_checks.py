"""Argument checks shared by the public constructors: one wording for every user mistake."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence

import numpy as np


def reject_unknown_keywords(owner: str, given: Iterable[str], valid: Iterable[str]) -> None:
    """Raise ``TypeError`` naming the unknown keywords and listing the valid ones.

    >>> reject_unknown_keywords("CreateSolver", ["lr"], ["lr", "seed"])
    >>> reject_unknown_keywords("CreateSolver", ["lrr"], ["lr", "seed"])
    Traceback (most recent call last):
    ...
    TypeError: CreateSolver() got unknown keyword(s) 'lrr'; valid keywords are: lr, seed
    """
    valid = list(valid)
    unknown = [name for name in given if name not in valid]
    if unknown:
        names = ", ".join(repr(n) for n in unknown)
        raise TypeError(f"{owner}() got unknown keyword(s) {names}; valid keywords are: {', '.join(valid)}")


def bind_arguments(owner: str, names: list[str], args: tuple, kwargs: dict, defaults: dict) -> dict:
    """Bind positional and keyword arguments to ``names`` (pybind order), apply defaults.

    Missing required arguments (those without a default) raise ``TypeError`` naming them.
    """
    if len(args) > len(names):
        raise TypeError(f"{owner}() takes at most {len(names)} positional arguments ({len(args)} given)")
    bound = dict(zip(names, args))
    reject_unknown_keywords(owner, kwargs, names)
    for name, value in kwargs.items():
        if name in bound:
            raise TypeError(f"{owner}() got multiple values for argument '{name}'")
        bound[name] = value
    missing = [n for n in names if n not in bound and n not in defaults]
    if missing:
        raise TypeError(f"{owner}() missing required argument(s): {', '.join(missing)}")
    for name in names:
        if name not in bound:
            default = defaults[name]
            bound[name] = default() if callable(default) else default
    return bound


def _is_int(value) -> bool:
    # numbers.Integral covers numpy integers too (scripts build sizes with numpy), as pybind11's caster does.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def require_int(owner: str, name: str, value, minimum: int | None = None) -> int:
    """``value`` as an int (bools refused, numpy integers accepted), at least ``minimum`` when given."""
    if not _is_int(value):
        raise TypeError(f"{owner}: {name} must be an int, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value}")
    return value


def require_number(owner: str, name: str, value) -> float:
    """``value`` as a float (bools refused, numpy scalars accepted)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number, got {value!r}")
    return float(value)


def require_bool(owner: str, name: str, value) -> bool:
    """``value`` as a bool: True / False, numpy bools, and the ints 0 / 1 (pybind11's bool caster
    takes those, so configs that spell flags as 0 / 1 work); anything else is refused."""
    if isinstance(value, (bool, np.bool_)) or (_is_int(value) and value in (0, 1)):
        return bool(value)
    raise TypeError(f"{owner}: {name} must be True or False (or 0 / 1), got {value!r}")


def require_str(owner: str, name: str, value, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{owner}: {name} must be a string, got {value!r}")
    if not allow_empty and not value:
        raise ValueError(f"{owner}: {name} must not be empty")
    return value


def require_int_list(owner: str, name: str, value) -> list[int]:
    """A sequence of ints (a list, tuple or numpy array), returned as a new list of Python ints."""
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = value.tolist()          # numpy arrays, as pybind11 accepts them
    if not isinstance(value, Sequence) or isinstance(value, str) or not all(_is_int(v) for v in value):
        raise TypeError(f"{owner}: {name} must be a list of ints, got {value!r}")
    return [int(v) for v in value]


def require_str_list(owner: str, name: str, value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)) or any(not isinstance(v, str) for v in value):
        raise TypeError(f"{owner}: {name} must be a list of strings, got {value!r}")
    return list(value)
