"""What twiga's docs need beyond configuration: nbdev's heading ids, lets-plot's library on the pages that draw
figures, and math as MathML. Everything is served from the site itself: pages render offline."""
import re
import shutil
from pathlib import Path

from docutils import nodes


def slug(text: str) -> str:
    "Quarto's (and so nbdev's) heading id: lower case, spaces to `-`, only letters, digits, `_`, `-` and `.` kept."
    return re.sub(r"[^\w.\-]", "", re.sub(r"\s+", "-", text.strip().lower()))


LETS_PLOT_JS = "lets-plot.min.js"


def _lets_plot(app, pagename, templatename, context, doctree):
    "Pages with lets-plot figures load the library from the site (build_docs.py removed the outputs' loaders)."
    if "LetsPlot." in context.get("body", ""): app.add_js_file(LETS_PLOT_JS, priority=100)


def _title_anchor(app, pagename, templatename, context, doctree):
    "A page titled like one of its entries (TwigaForecaster): the entry gets the name's anchor, as on nbdev's site."
    body = context.get("body", "")
    m = re.search(r'<section\b[^>]*\bid="([^"]+)"', body)
    if not m or f'id="{m.group(1)}-1"' not in body: return
    x = m.group(1)
    body = body[:m.start(1)] + f"{x}-page" + body[m.end(1):]
    context["body"] = body.replace(f'id="{x}-1"', f'id="{x}"').replace(f'href="#{x}-1"', f'href="#{x}"')


def _copy_lets_plot(app, exc):
    if exc is None and app.builder.format == "html":
        import lets_plot
        src = Path(lets_plot.__file__).parent / "package_data" / LETS_PLOT_JS
        shutil.copy2(src, Path(app.outdir) / "_static" / LETS_PLOT_JS)


def _mathml(latex: str, display: str) -> str:
    from latex2mathml.converter import convert
    return convert(latex.strip(), display=display)


def _inline_math(self, node):
    "`$x$` as MathML, which browsers draw themselves: no MathJax to fetch from a CDN."
    self.body.append(f'<span class="math">{_mathml(node.astext(), "inline")}</span>')
    raise nodes.SkipNode


def _block_math(self, node):
    self.body.append(f'<div class="math">{_mathml(node.astext(), "block")}</div>')
    raise nodes.SkipNode


def setup(app):
    app.connect("html-page-context", _lets_plot)
    app.connect("html-page-context", _title_anchor)
    app.connect("build-finished", _copy_lets_plot)
    app.add_html_math_renderer("mathml", (_inline_math, None), (_block_math, None))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
