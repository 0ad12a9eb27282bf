"""The docs site: built from the notebooks without Quarto (scripts/build_docs.py), then looked at as a reader
sees it, in headless Chromium. The build runs on a few notebooks so the test stays fast; `./dev docs` builds all.

Screenshots are kept in _site/_screenshots/ (the paths are printed). Without Chromium the browser test is
skipped on a workstation and fails in CI (CI is set): install it with `apt-get install -y chromium`.
"""
import html
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "build_docs.py"
SHOTS = ROOT / "_site" / "_screenshots"
SUBSET = ["00_core.errors.ipynb", "03_datasets.ipynb", "17_core.plot.ipynb"]
pytestmark = pytest.mark.timeout(1200)


def _load_script():
    spec = importlib.util.spec_from_file_location("build_docs", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bd = _load_script()


def _text(page: str) -> str:
    "The text a reader sees: no scripts, styles or tags, entities decoded."
    page = re.sub(r"<(script|style)\b.*?</\1>", "", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", page))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    start = time.time()
    res = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--only", *SUBSET],
                         cwd=ROOT, capture_output=True, text=True, timeout=1100)
    print(res.stdout[-4000:], f"\ndocs build of {len(SUBSET)} notebooks + index: {time.time() - start:.1f} s")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    return out


def _pages(site: Path) -> list[str]:
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html") if "_proc" not in p.parts)


def test_every_notebook_is_a_page_with_the_whole_sidebar(site):
    pages = _pages(site)
    assert set(pages) == {"index.html", "core.errors.html", "datasets.html", "core.plot.html"}
    for page in pages:
        doc = (site / page).read_text()
        sidebar = re.search(r'<aside class="sidebar">(.*?)</aside>', doc, flags=re.S).group(1)
        links = re.findall(r'href="([^"]+)"', sidebar)
        assert links == ["index.html", "core.errors.html", "datasets.html", "core.plot.html"], (page, links)
        assert re.search(r'<h1 class="title">[^<]+</h1>', doc)


def test_no_directives_quarto_markup_or_failed_cells_leak(site):
    for page in _pages(site):
        text = _text((site / page).read_text())
        directive_lines = [ln for ln in text.splitlines() if ln.strip().startswith("#|")]
        assert not directive_lines, (page, directive_lines[:3])
        assert ":::" not in text, page
        assert not re.search(r"\{(target|style|width)=|\{\{<|\{\.callout", text), page
        assert "Traceback" not in text and "NameError" not in text, page


def test_api_pages_show_the_rendered_reference(site):
    datasets = _text((site / "datasets.html").read_text())
    # show_doc's rendered signature, with the docments of each parameter
    assert "def load_ercot(" in datasets
    assert "start:str | None=None, # first timestamp kept (inclusive)" in datasets
    assert "The bundled hourly ERCOT demand and weather" in datasets
    errors = (site / "core.errors.html").read_text()
    assert 'id="invalidinputerror"' in errors and "def InvalidInputError(" in _text(errors)
    # nbdev's links to documented names point inside the site, not at the configured doc host
    assert 'href="core.errors.html#twigaerror"' in errors and "twiga.example.org" not in errors
    # the examples ran: their outputs are on the page (a DataFrame, lets-plot figures)
    plot = (site / "core.plot.html").read_text()
    assert plot.count('<div class="lets-plot">') >= 3 and 'src="_static/lets-plot.min.js"' in plot
    assert "cdn.jsdelivr" not in plot and (site / "_static" / "lets-plot.min.js").stat().st_size > 1_000_000


def test_internal_links_resolve(site):
    "Links inside the site lead to a page and an anchor that exist (or to a notebook's page this subset skipped)."
    not_built = {bd.page_path(nb) for nb in bd.find_notebooks()} - set(_pages(site))
    for page in _pages(site):
        doc = (site / page).read_text()
        for href in re.findall(r'href="([^"]+)"', doc):
            if href.startswith(("http:", "https:", "mailto:")) or href.startswith("#"): continue
            target, _, anchor = href.partition("#")
            path = (site / page).parent / target
            if not path.exists() and path.relative_to(site).as_posix() in not_built: continue
            assert path.exists(), (page, href)
            if anchor and path.suffix == ".html": assert f'id="{anchor}"' in path.read_text(), (page, href)


def test_quarto_markdown_is_cleaned():
    md = ('::: {.callout-note}\nUse `fit` first.\n:::\n## Set-up {#sec-setup}\n'
          '[source](https://x.org/a.py#L3){target="_blank" style="float:right"}\n![](a.png){width=50%}\n{{< video x >}}')
    out = bd.clean_quarto_markdown(md)
    assert ":::" not in out and "{" not in out
    assert '<div class="callout-note">' in out and "## Set-up\n" in out + "\n"
    assert '<a href="https://x.org/a.py#L3" target="_blank" style="float:right">source</a>' in out
    test, body = bd._directives("#| echo: false\n#| output: asis\nshow_doc(f)")
    assert test == {"echo": "false", "output": "asis"} and body == "show_doc(f)"


@pytest.fixture(scope="module")
def chromium():
    exe = bd.find_chromium()
    if exe is None:
        if os.environ.get("CI"): pytest.fail("Chromium is required in CI: apt-get install -y chromium")
        pytest.skip("Chromium not installed (apt-get install -y chromium); required in CI")
    return exe


def test_pages_render_in_headless_chromium(site, chromium, capsys):
    SHOTS.mkdir(parents=True, exist_ok=True)
    for page in ("index.html", "core.errors.html"):
        built = (site / page).read_text()
        title = html.unescape(re.search(r'<h1 class="title">([^<]+)</h1>', built).group(1))
        first_para = _text(re.search(r"<main>.*?(<p>.*?</p>)", built, flags=re.S).group(1)).split("\n")[0][:60]
        dom = _text(bd.dump_dom(site / page))
        assert title in dom and first_para in dom, (page, title, first_para)
        assert "Datasets" in dom and "Plots" in dom           # the sidebar is there
        png = bd.screenshot(site / page, SHOTS / f"{Path(page).stem}.png")
        stats = bd.png_stats(png)
        assert stats["width"] == 1280 and stats["colors"] >= 8 and stats["white_share"] < 0.98, stats
        with capsys.disabled(): print(f"\nscreenshot: {png} {stats}")
    # lets-plot draws the figures as SVG in the browser, offline, from the site's own copy of its library
    dom = bd.dump_dom(site / "core.plot.html")
    assert dom.count("<svg") >= 3 and "Error loading Lets-Plot" not in dom
    png = bd.screenshot(site / "core.plot.html", SHOTS / "core.plot.png", size=(1280, 1400))
    with capsys.disabled(): print(f"screenshot: {png} {bd.png_stats(png)}")
