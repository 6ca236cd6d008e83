"""Console output in HugeCTR's format: ``[HCTR][HH:MM:SS.mmm][INFO][RK0][main]: message``.

Only rank 0 prints (as HugeCTR's INFO lines). ``HUGECTR_LOG_LEVEL`` follows HugeCTR's numbering
(-1 silent, 0 errors, 1 warnings, 2 info, 3 debug; default 2 here so debug chatter stays off).
``banner`` prints HugeCTR's unprefixed 115-character section banners.
"""

from __future__ import annotations

import datetime
import os
import sys

from .distributed import env

LEVELS = {"ERROR": 0, "WARNING": 1, "INFO": 2, "DEBUG": 3}
BANNER_WIDTH = 115


def _threshold() -> int:
    """``HUGECTR_LOG_LEVEL`` (default 2); anything but an integer is refused, naming the levels."""
    value = os.environ.get("HUGECTR_LOG_LEVEL", "2").strip()
    try:
        return int(value)
    except ValueError:
        raise ValueError("HUGECTR_LOG_LEVEL must be an integer (-1 silent, 0 errors, 1 warnings, 2 info, 3 debug), "
                         f"got {value!r}") from None


def _emit(text: str) -> None:
    print(text, file=sys.stdout, flush=True)


def log(message: str, level: str = "INFO", all_ranks: bool = False) -> None:
    """Print one prefixed line, like HugeCTR's ``HCTR_LOG_S(level, ROOT)``."""
    if LEVELS[level] > _threshold() or (not all_ranks and env.rank() != 0):
        return
    now = datetime.datetime.now().strftime("%H:%M:%S.%f")[:-3]
    _emit(f"[HCTR][{now}][{level}][RK{env.rank()}][main]: {message}")


def info(message: str) -> None:
    log(message, "INFO")


def warning(message: str) -> None:
    log(message, "WARNING")


def plain(message: str) -> None:
    """An unprefixed line (HugeCTR's ``HCTR_PRINT``): banners and the summary table."""
    if _threshold() >= LEVELS["INFO"] and env.rank() == 0:
        _emit(message)


def banner(title: str) -> None:
    """``=====...Model Init...=====`` at 115 characters, the title centred as HugeCTR does."""
    left = (BANNER_WIDTH - len(title)) // 2
    plain("=" * left + title + "=" * (BANNER_WIDTH - len(title) - left))


def number(value: float) -> str:
    """C++ ``ostream <<`` default formatting (6 significant digits): 0.124098, 8.70458, 0.001."""
    return f"{value:.6g}"
