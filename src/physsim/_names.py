"""The one "unknown name" error: what was not found, the closest known name, and every known one.

Every lookup by name (scene families, their parameters, config keys, model
sizes, task types, splits, backends, formats) raises through `unknown`, so a
typo gets the same kind of answer everywhere.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def suggestion(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to `name` (difflib's ratio, at least 0.5), or None."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.5)
    return close[0] if close else None


def unknown(kind: str, name: str, known: Iterable[str], error: type[Exception] = ValueError,
            list_known: bool = True, where: str = "") -> Exception:
    """`error("unknown <kind> '<name>'<where>; did you mean '<closest>'? Known: a, b, c")`: the hint only when a
    known name is close, the list unless `list_known` is False (for long lists such as every config key);
    `where` says whose name it is (" of template 't'"). Returned, not raised, so that the caller's `raise`
    shows where the lookup failed."""
    known = [str(k) for k in known]
    close = suggestion(name, known)
    hint = f"; did you mean {close!r}?" if close else ""
    listed = f" Known: {', '.join(known)}" if list_known or not close else ""
    return error(f"unknown {kind} {name!r}{where}{hint}{listed}")
