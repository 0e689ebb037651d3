"""`dvc plots show` / `dvc plots diff` as a user runs them offline: every chart, no CDN."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.e2e.conftest import DVC, commit_clone, copy_project, git_user_env, run

pytestmark = pytest.mark.slow

TABLES = {
    "reports/plots/predictions.csv": "actual,predicted\n1.0,1.2\n2.5,2.1\n4.0,3.6\n",
    "reports/plots/feature_importance.csv": "feature,importance\nlang,0.1\nfollowers,0.6\n",
    "reports/plots/tune_trials.csv": "trial,validation_rmse,best_so_far\n0,0.9,0.9\n1,0.7,0.7\n",
}
TITLES = (
    "Predicted vs actual engagement (test rows)",
    "Feature importance (RandomForest), largest first",
    "Tune loss by trial (validation rmse; best so far)",
)


def _write_tables(project: Path, scale: float) -> None:
    for path, text in TABLES.items():
        lines = text.splitlines()
        scaled = [lines[0]] + [
            ",".join(f"{float(v) * scale:g}" if re.fullmatch(r"[\d.]+", v) else v for v in row)
            for row in (line.split(",") for line in lines[1:])
        ]
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text("\n".join(scaled) + "\n")


def _title(spec: dict) -> str:
    title = spec["title"]
    return title if isinstance(title, str) else title["text"]


def test_dvc_plots_render_every_chart_with_the_scripts_inlined(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "tweetops")
    env = git_user_env()
    _write_tables(project, 1.0)
    commit_clone(project, env)
    _write_tables(project, 1.5)  # the workspace differs from HEAD: `dvc plots diff` draws both

    for command in (["show"], ["diff", "HEAD"]):
        out = tmp_path / f"plots-{command[0]}"
        run([*DVC, "plots", *command, "-o", str(out)], cwd=project, env=env)
        page = (out / "index.html").read_text(encoding="utf-8")
        # nothing is fetched: no script has a src, no URL is loaded from the page
        assert not re.search(r"<script[^>]*\bsrc\s*=", page)
        assert "cdn.jsdelivr" not in page
        # the libraries are in the page, from the template .dvc/config names
        template = (project / ".dvc" / "plots" / "offline.html").read_text(encoding="utf-8")
        bundle = template.split('<script type="text/javascript">\n', 1)[1].split("</script>")[0]
        assert len(bundle) > 100_000 and bundle in page
        # one chart per plots entry of dvc.yaml, each drawn by vegaEmbed from its spec
        specs = re.findall(r"var spec = (\{.*?\});\s*vegaEmbed\(", page, flags=re.DOTALL)
        assert len(specs) == 3
        titles = [_title(json.loads(spec)) for spec in specs]
        assert sorted(titles) == sorted(TITLES)
        tune = json.loads(specs[titles.index(TITLES[2])])
        assert {"validation_rmse", "best_so_far"} <= set(json.dumps(tune).split('"'))
        if command[0] == "diff":
            assert '"HEAD"' in page and '"workspace"' in page
