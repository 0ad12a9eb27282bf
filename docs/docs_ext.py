"""The two things twiga's docs need beyond configuration: nbdev's heading ids, and lets-plot's library on the pages
that draw figures (served from the site, so figures render offline)."""
import re
import shutil
from pathlib import Path


def slug(text: str) -> str:
    "Quarto's (and so nbdev's) heading id: lower case, spaces to `-`, only letters, digits, `_`, `-` and `.` kept."
    return re.sub(r"[^\w.\-]", "", re.sub(r"\s+", "-", text.strip().lower()))


LETS_PLOT_JS = "lets-plot.min.js"


def _lets_plot(app, pagename, templatename, context, doctree):
    "Pages with lets-plot figures load the library the notebook outputs expect (`window.LetsPlot`)."
    if "LetsPlot." in context.get("body", ""): app.add_js_file(LETS_PLOT_JS, priority=100)


def _copy_lets_plot(app, exc):
    if exc is None and app.builder.format == "html":
        import lets_plot
        src = Path(lets_plot.__file__).parent / "package_data" / LETS_PLOT_JS
        shutil.copy2(src, Path(app.outdir) / "_static" / LETS_PLOT_JS)


def setup(app):
    app.connect("html-page-context", _lets_plot)
    app.connect("build-finished", _copy_lets_plot)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
