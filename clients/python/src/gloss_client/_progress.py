"""Progress bars: tqdm when it is installed, nothing otherwise."""

from __future__ import annotations

import logging
from typing import Any, Optional

log = logging.getLogger("gloss_client")


class NoBar:
    """Stands in for a bar when there is none."""

    def update(self, n: int = 1) -> None:
        """Counts `n` more."""

    def reset(self, total: Optional[int] = None) -> None:
        """Starts over."""

    def close(self) -> None:
        """Removes the bar."""


def bar(enabled: bool, total: Optional[int], desc: str, unit: str) -> Any:
    """A tqdm bar on standard error (a widget in notebooks), or a :class:`NoBar` when `enabled`
    is False or tqdm is not installed (`pip install gloss-client[progress]`)."""
    if not enabled:
        return NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        log.debug("tqdm is not installed; no progress bar")
        return NoBar()
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False)
