"""Write `offline.html` beside this file: DVC's plots page with its scripts inlined.

DVC's default page loads Vega, Vega-Lite and vega-embed from a CDN, so offline it is blank.
This page carries the three libraries (bundled by the pinned vl-convert-python, no network) in
the page itself; `.dvc/config` points `dvc plots show` and `dvc plots diff` at it
(`plots.html_template`). It has no `{scripts}` placeholder, so DVC adds no CDN tag. Run
`make plots-template` after changing the vl-convert-python pin; the file is committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import vl_convert

VEGA_LITE_VERSION = "5.21"  # the schema of DVC's templates and of scatter_identity.json
OUTPUT = Path(__file__).with_name("offline.html")


def offline_page() -> str:
    """The HTML template: DVC's `{refresh_tag}` and `{plot_divs}` placeholders, scripts inlined."""
    bundle = vl_convert.javascript_bundle(vl_version=VEGA_LITE_VERSION)
    if "</script" in bundle.lower() or "{plot_divs}" in bundle:
        raise SystemExit("the bundle cannot be inlined: it holds </script or {plot_divs}")
    versions = (
        f"vega {vl_convert.get_vega_version()}, vega-lite {VEGA_LITE_VERSION}, "
        f"vega-embed {vl_convert.get_vega_embed_version()}, "
        f"bundled by vl-convert-python {vl_convert.__version__}"
    )
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n    {refresh_tag}\n"
        '    <meta charset="utf-8">\n    <title>DVC Plot</title>\n'
        f"    <!-- written by .dvc/plots/offline_template.py: {versions} -->\n"
        '    <script type="text/javascript">\n'
        f"{bundle}\n"
        "    </script>\n"
        "    <style>\n        table {\n            border-spacing: 15px;\n        }\n    </style>\n"
        "</head>\n<body>\n    {plot_divs}\n</body>\n</html>\n"
    )


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT
    target.write_text(offline_page(), encoding="utf-8")
