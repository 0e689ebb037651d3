"""The offline page `dvc plots` fills: what the pinned vl-convert-python bundles, byte for byte."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from configobj import ConfigObj

from tests.conftest import REPO_ROOT

PLOTS_DIR = REPO_ROOT / ".dvc" / "plots"


def test_committed_template_is_the_generators_output(tmp_path: Path) -> None:
    written = tmp_path / "offline.html"
    subprocess.run(
        [sys.executable, str(PLOTS_DIR / "offline_template.py"), str(written)],
        check=True,
        timeout=300,
    )
    committed = (PLOTS_DIR / "offline.html").read_bytes()
    assert committed == written.read_bytes(), "run `make plots-template` and commit the page"
    page = committed.decode("utf-8")
    # DVC fills {plot_divs}; without {scripts} it adds none of its CDN script tags
    assert "{plot_divs}" in page and "{scripts}" not in page
    assert "<script src" not in page


def test_dvc_config_points_plots_at_the_offline_template() -> None:
    config = ConfigObj(str(REPO_ROOT / ".dvc" / "config"))  # the parser DVC reads it with
    assert (REPO_ROOT / ".dvc" / config["plots"]["html_template"]) == PLOTS_DIR / "offline.html"
