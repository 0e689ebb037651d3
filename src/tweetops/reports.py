"""Small JSON reports under `reports/` that DVC tracks as metrics and later stages read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_report(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` as stable, human-readable JSON (sorted keys, trailing newline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_report(path: Path) -> dict[str, Any]:
    """Read a report written by :func:`write_report`."""
    return json.loads(path.read_text(encoding="utf-8"))
