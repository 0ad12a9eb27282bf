"""The docs site: every notebook built into a page by scripts/build_docs.py (the build executes each notebook once:
it is the notebook test of `./dev test`), then checked as a reader meets it: the whole public API has an entry with
a stable anchor, pages read as documentation, search finds definitions, and headless Chromium opens every page
without a console error, a broken link or anchor, or an image that does not load.

`./dev test` builds the site into _site/ just before pytest; these tests reuse it when _site/_docs.json says it was
built from the current sources, and build it otherwise (a few minutes). Screenshots go to <site>/_screenshots/
(the paths are printed; not committed). Chromium: Debian's `chromium` (/usr/bin/chromium), which `./dev test`
installs as root; Playwright drives it and never downloads a browser. Without it these tests fail in CI (CI is set)
and are skipped elsewhere.
"""
import functools
import html
import http.server
import importlib
import importlib.util
import inspect
import json
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "build_docs.py"
SITE = ROOT / "_site"
CHROMIUM = os.environ.get("TWIGA_CHROMIUM", "/usr/bin/chromium")
# No host name resolves but 127.0.0.1's: a page cannot load anything from outside the site (each request that tries is
# recorded and fails the tests, see `_page`).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
pytestmark = pytest.mark.timeout(1800)


def _load_script():
    spec = importlib.util.spec_from_file_location("build_docs", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bd = _load_script()
sys.path.insert(0, str(ROOT / "docs"))
from docs_ext import slug  # noqa: E402  (the docs' own anchor function)


def _run_build(*args, timeout=1700) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def _text(page: str) -> str:
    "The text a reader sees: no scripts, styles or tags, entities decoded."
    page = re.sub(r"<(script|style)\b.*?</\1>", "", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def _ids(page: str) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', page)) | set(re.findall(r'<a [^>]*\bname="([^"]+)"', page))


# ---------------------------------------------------------------- the machinery, on a small made-up project
def _nb(*cells) -> str:
    def cell(c):
        kind, src, *outs = c
        d = {"cell_type": kind, "metadata": {}, "source": src}
        if kind == "code": d.update(execution_count=None, outputs=outs)
        return d
    kernel = {"name": "python3", "display_name": "python3", "language": "python"}
    return json.dumps({"cells": [cell(c) for c in cells], "nbformat": 4, "nbformat_minor": 5,
                       "metadata": {"kernelspec": kernel}})


GOOD = _nb(
    ("code", "#| default_exp good"),
    ("markdown", "# Good\n> A page that builds."),
    ("code", "#| export\nimport os"),
    ("code", "#| hide\nfrom fastcore.test import test_eq"),
    ("code", '#| export\ndef add(a: int, # the first\n        b: int = 2, # the second\n       ) -> int:\n'
             '    "Add `a` and `b`."\n    return a + b'),
    ("markdown", "## Example\n\n`add` adds. See [the failing page](01_bad.ipynb), [a box](#box.size).\n\n"
                 "![a dot](images/dot.svg)"),
    ("code", "test_eq(add(1), 3)\nadd(40)"),
    ("code", '#| export\nclass Box:\n    "A box."\n    def __init__(self, x): self.x = x\n'
             '    def size(self, scale: int = 1, # multiplier\n            ) -> int:\n'
             '        "The size of the box."\n        return self.x * scale\n'
             '    @property\n    def twice(self) -> int:\n        "Twice x."\n        return 2 * self.x\n'
             '    def _hidden(self): pass'),
    ("code", '#| eval: false\nraise RuntimeError("an eval-false cell ran")'),
    ("code", '#| slow\nraise RuntimeError("a tst_flags cell ran")'),
    ("code", 'test_eq(os.environ.get("IN_TEST"), "1")\nprint("ran in", os.path.basename(os.getcwd()))'),
    ("code", '#| echo: false\nprint("an output without its code")'),
)
BAD = _nb(("markdown", "# Bad\n> A cell fails."), ("code", "x = 1"), ("code", "y = x + undefined_name"),
          ("code", 'print("after the failure")'))
LINKS = _nb(("markdown", "# Links\n> Broken references."),
            ("markdown", "A [missing anchor](00_good.ipynb#no-such-entry) and a ![missing image](images/missing.png)."))
KEPT = _nb(("markdown", "# Kept\n> Committed outputs."),
           ("code", 'raise SystemExit("a kept notebook was executed")',
            {"output_type": "stream", "name": "stdout", "text": "the committed output 12345\n"}))
INDEX = _nb(("markdown", "# demo\n> The made-up project."))
SETTINGS = """[DEFAULT]
repo = demo
lib_name = demo
lib_path = demo
nbs_path = nbs
doc_path = _docs
version = 0.0.1
title = demo
tst_flags = notest slow
doc_host = https://demo.example.org
doc_baseurl = /
git_url = https://example.org/demo/demo
branch = main
recursive = True
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    "A made-up project: a good notebook, a failing one, one with broken references, a tutorial with kept outputs."
    root = tmp_path_factory.mktemp("demo")
    nbs = root / "nbs"
    (nbs / "images").mkdir(parents=True)
    (nbs / "tutorials").mkdir()
    (root / "settings.ini").write_text(SETTINGS)
    for name, text in {"00_good.ipynb": GOOD, "01_bad.ipynb": BAD, "02_links.ipynb": LINKS, "index.ipynb": INDEX,
                       "tutorials/01_kept.ipynb": KEPT, "_draft/00_skipped.ipynb": BAD}.items():
        (nbs / name).parent.mkdir(parents=True, exist_ok=True)
        (nbs / name).write_text(text)
    (nbs / "images" / "dot.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8">'
                                            '<circle cx="4" cy="4" r="4"/></svg>')
    res = _run_build("--nbs", nbs, "--out", root / "site", "--proc-dir", root / "proc",
                     "--keep-outputs", nbs / "tutorials" / "01_kept.ipynb", timeout=600)
    return root, res


def test_build_fails_naming_notebook_and_cell(demo):
    root, res = demo
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    problems = out.split("problem(s):")[1]
    assert "nbs/01_bad.ipynb: cell 2 failed: NameError: name 'undefined_name' is not defined" in problems, out
    assert "nbs/02_links.ipynb, cell 1:" in problems and "'no-such-entry'" in problems, out
    assert "nbs/02_links.ipynb" in problems and "images/missing.png" in problems, out
    assert "good.ipynb" not in problems and "kept" not in problems and "skipped" not in problems, problems
    assert "a kept notebook was executed" not in out and "ran" not in problems, out


def test_build_executes_as_nbdev_test_and_shows_the_api(demo):
    root, _ = demo
    site = root / "site"
    assert sorted(p.relative_to(site).as_posix() for p in site.glob("**/*.html")
                  if not p.relative_to(site).parts[0].startswith("_") and p.name not in ("genindex.html", "search.html")
                  ) == ["bad.html", "good.html", "index.html", "links.html", "tutorials/kept.html"]
    good = (site / "good.html").read_text()
    text = _text(good)
    # show_doc entries with nbdev's anchors, docments and defaults, class-body methods and properties included
    assert {"add", "box", "box.size", "box.twice"} <= _ids(good) and "box._hidden" not in _ids(good)
    assert "b:int=2, # the second" in text and "Add a and b." in text and "The size of the box." in text
    # the examples ran once, in the notebook's folder, under IN_TEST; eval-false and tst_flags cells did not
    assert "42" in text and "ran in nbs" in text
    assert "an eval-false cell ran" in text and "a tst_flags cell ran" in text   # shown as code, not run:
    assert "output traceback" not in good and "Traceback" not in text
    # exported and hidden cells are not shown; echo: false shows the output only
    assert "from fastcore.test import" not in text and "return a + b" not in text and "#|" not in text
    assert "an output without its code" in text and 'print("an output without its code")' not in text
    # links to notebooks and anchors resolve inside the site; images are copied
    assert 'href="bad.html"' in good and 'href="#box.size"' in good or 'href="#box-size"' in good
    assert (site / "_images" / "dot.svg").exists()
    kept = _text((site / "tutorials" / "kept.html").read_text())
    assert "the committed output 12345" in kept
    manifest = json.loads((site / "_docs.json").read_text())
    assert manifest["symbols"] == 4 and len(manifest["pages"]) == 5


def test_link_rewriting():
    cfg = {"doc_host": "https://twiga.example.org", "doc_baseurl": "/", "git_url": "https://example.org/twiga/twiga",
           "branch": "main"}
    nbs = [PurePosixPath(p) for p in ("16_forecaster.ipynb", "tutorials/01_getting_started.ipynb", "index.ipynb")]
    links = bd.Links(PurePosixPath("tutorials/01_getting_started.ipynb"), nbs, cfg)
    md = ("[`TwigaForecaster.fit`](https://twiga.example.org/forecaster.html#twigaforecaster.fit) and "
          "[`_fit`](https://twiga.example.org/forecaster.html#_fit), [home](../index.ipynb), "
          "[src](https://example.org/twiga/twiga/blob/main/twiga/forecaster.py#L12), [ext](https://pandas.pydata.org)")
    assert bd.Links(PurePosixPath("16_forecaster.ipynb"), nbs, cfg).url("tutorials/01_getting_started.ipynb#fit") \
        == "tutorials/getting_started.ipynb#fit"
    assert links.markdown(md) == (
        "[`TwigaForecaster.fit`](../forecaster.ipynb#twigaforecaster.fit) and `_fit`, [home](../index.ipynb), "
        "[src](../_src/twiga/forecaster.py.html#L-12), [ext](https://pandas.pydata.org)")
    assert links.url("https://twiga.example.org/forecaster.html#x", html=True) == "../forecaster.html#x"
    assert bd.quarto_to_myst("::: {.callout-note}\nUse `fit` first.\n:::\n## Set-up {#sec-setup}") == \
        ":::{note}\nUse `fit` first.\n:::\n(sec-setup)=\n## Set-up"
    assert bd.cell_options("#| echo: false\n#| output: asis\nshow_doc(f)") == ({"echo": "false", "output": "asis"},
                                                                              "show_doc(f)")


# ---------------------------------------------------------------- the real site
def _output_notebooks() -> list[Path]:
    "The notebooks whose committed outputs nbval checks (./dev's OUTPUT_NOTEBOOKS): shown, not executed."
    names = re.search(r"^OUTPUT_NOTEBOOKS=\(([^)]*)\)", (ROOT / "dev").read_text(), re.M).group(1).split()
    return [ROOT / n for n in names]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    "The whole site: _site/ if it was built from the current sources, else a fresh build (TWIGA_DOCS_SITE: this one)."
    if os.environ.get("TWIGA_DOCS_SITE"): return Path(os.environ["TWIGA_DOCS_SITE"])
    manifest = SITE / bd.MANIFEST
    if manifest.exists():
        m = json.loads(manifest.read_text())
        if m.get("inputs") == bd.inputs_digest() and not m.get("only"): return SITE
    out = tmp_path_factory.mktemp("site")
    res = _run_build("--out", out, "--proc-dir", out.parent / "proc", "--keep-outputs", *_output_notebooks())
    print(res.stdout[-3000:], res.stderr[-6000:])
    assert (out / bd.MANIFEST).exists(), res.stdout[-4000:] + res.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def manifest(site) -> dict:
    return json.loads((site / bd.MANIFEST).read_text())


def test_every_notebook_built_without_a_problem(manifest):
    "Every cell ran, nbdev processed every page (no page fell back to source), Sphinx had no warning."
    assert manifest["errors"] == [], "\n" + "\n".join(manifest["errors"])


def test_every_notebook_is_a_page_in_reading_order(site, manifest):
    notebooks = [PurePosixPath(p.relative_to(ROOT / "nbs").as_posix()) for p in bd.find_notebooks(ROOT / "nbs")]
    assert sorted(p["notebook"] for p in manifest["pages"]) == sorted(map(str, notebooks))
    for nb in notebooks: assert (site / bd.page_path(nb)).exists(), nb
    # the sidebar: tutorials, then the API in file-name order (the order of reading), then the other folders
    top = sorted(p for p in notebooks if p.parent == PurePosixPath(".") and p.name != "index.ipynb")
    folders = sorted({p.parent.as_posix() for p in notebooks} - {".", "tutorials"})
    expected = [bd.page_path(p) for p in sorted(p for p in notebooks if p.parent.as_posix() == "tutorials")]
    expected += [bd.page_path(p) for p in top]
    expected += [bd.page_path(p) for f in folders for p in sorted(p for p in notebooks if p.parent.as_posix() == f)]
    nav = re.search(r'<nav class="[^"]*bd-docs-nav[^"]*"[^>]*>(.*?)</nav>', (site / "index.html").read_text(), re.S)
    nav = nav.group(1)
    assert [h for h in re.findall(r'href="([^"#]+)"', nav) if h != "#"] == expected


def _cells(nb: Path) -> list[dict]:
    return json.loads(nb.read_text())["cells"]


_HIDING = re.compile(r"^#\|\s*(export|exporti|hide|default_exp)\b", re.M)
_DIRECTIVE_LINE = re.compile(r"^#\|.*$", re.M)


def test_pages_read_as_documentation(site, manifest):
    "Pages open with their title and summary; no directive, exported or hidden cell, or traceback reaches a reader."
    problems = []
    for p in manifest["pages"]:
        page = (site / p["page"]).read_text()
        main = re.search(r'<main[^>]*>(.*)</main>', page, re.S).group(1)
        text = _text(main)
        h1 = re.search(r"<h1[^>]*>(.*?)</h1>", main, re.S)
        if not h1 or not _text(h1.group(1)).strip().startswith(p["title"].replace("`", "")):
            problems.append(f"{p['page']}: no title {p['title']!r}")
        if p["description"] and "description" not in main:
            problems.append(f"{p['page']}: no summary")
        if p["notebook"] != "index.ipynb" and not p["description"]:
            problems.append(f"nbs/{p['notebook']}: no `>` one-line summary under the title")
        if re.search(r"^\s*#\|", text, re.M): problems.append(f"{p['page']}: a `#|` directive is shown")
        if "Traceback (most recent call last)" in text: problems.append(f"{p['page']}: a traceback is shown")
        shown = {_text(b).strip() for b in re.findall(r'<div class="cell_input.*?<pre>(.*?)</pre>', main, re.S)}
        for i, c in enumerate(_cells(ROOT / "nbs" / p["notebook"])):
            src = "".join(c["source"])
            if c["cell_type"] == "code" and _HIDING.search(src):
                body = _DIRECTIVE_LINE.sub("", src).strip()
                if body and any(body in s for s in shown):
                    problems.append(f"nbs/{p['notebook']} cell {i}: an exported or hidden cell is shown as code")
    assert not problems, "\n" + "\n".join(problems)


def _code_cells(nb: Path):
    for i, c in enumerate(_cells(nb)):
        if c["cell_type"] == "code": yield i, "".join(c["source"])


def test_no_cell_mixes_imports_and_code():
    ("nbdev's docs processing (`nbdev_docs`, for Quarto users) re-runs every cell holding an import in a fresh shell\n"
     "with only the imports and exports: a cell that mixes imports with other code then runs out of order and fails.")
    import ast
    problems = []
    for nb in bd.find_notebooks(ROOT / "nbs"):
        for i, src in _code_cells(nb):
            if re.search(r"^#\|\s*(eval:\s*false|export|exports|exporti|exec_doc)\b", src, re.M): continue
            code = "\n".join(ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!")))
            try: nodes = list(ast.walk(ast.parse(code)))
            except SyntaxError: continue
            # `try: import x` / `except ImportError` shows whether an import works: it runs alone, safely
            probes = [n for n in nodes if isinstance(n, ast.Try)
                      and all(isinstance(b, (ast.Import, ast.ImportFrom)) for b in n.body)]
            rest = [n for n in nodes if not any(n is m or n in ast.walk(m) for p in probes for m in p.handlers)]
            if any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in rest) and \
                    any(isinstance(n, (ast.Expr, ast.Assign)) for n in rest):
                problems.append(f"nbs/{nb.relative_to(ROOT / 'nbs').as_posix()} cell {i}: imports mixed with code")
    assert not problems, "\n" + "\n".join(problems)


def test_module_pages_show_an_example_with_its_output(site, manifest):
    "A module's page shows its API at work: at least one example whose output is on the page."
    problems = []
    for p in manifest["pages"]:
        if not p["modules"]: continue
        main = re.search(r"<main[^>]*>(.*)</main>", (site / p["page"]).read_text(), re.S).group(1)
        cells = main.split('<div class="cell ')[1:]
        if not any('class="cell_input' in c and 'class="cell_output' in c for c in cells):
            problems.append(f"nbs/{p['notebook']}: no example with an output on {p['page']}")
    assert not problems, "\n" + "\n".join(problems)


def test_quarto_config_is_what_nbdev_generates(capsys):
    "nbdev_docs (Quarto) reads nbs/sidebar.yml and nbs/nbdev.yml: both as nbdev generates them (`nbdev_sidebar`)."
    from nbdev.config import get_config
    from nbdev.quarto import _nbdev_yml, nbdev_sidebar
    nbdev_sidebar.__wrapped__(path=ROOT / "nbs", printit=True)
    assert capsys.readouterr().out.strip() == (ROOT / "nbs" / "sidebar.yml").read_text().strip(), \
        "nbs/sidebar.yml is stale: run nbdev_sidebar"
    cfg = get_config(path=ROOT)
    vals = {k: cfg[k] for k in ["title", "description", "branch", "git_url", "doc_host", "doc_baseurl"]}
    assert _nbdev_yml.format(**vals, doc_path=cfg.doc_path.name) == (ROOT / "nbs" / "nbdev.yml").read_text()
    assert (ROOT / "nbs" / "_quarto.yml").resolve() == (ROOT / "_quarto.yml").resolve()


# ---------------------------------------------------------------- the whole public API
def _is_member(v) -> bool:
    return inspect.isfunction(v) or isinstance(v, (property, classmethod, staticmethod))


def _member_home(v, home: str) -> str:
    "The module that defines class member `v` (its function's, or its getter's), else the class's `home`."
    f = v.fget if isinstance(v, property) else getattr(v, "__func__", v)
    return getattr(f, "__module__", None) or home


def public_api() -> list[tuple[str, str]]:
    ("(defining module, name) of every name in a twiga module's `__all__` and of the public methods and properties of\n"
     "those that are classes, found by importing every module of the package.")
    import twiga
    found = set()
    for info in pkgutil.walk_packages(twiga.__path__, "twiga."):
        if info.name.rsplit(".", 1)[-1].startswith("_"): continue
        mod = importlib.import_module(info.name)
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            home = getattr(obj, "__module__", None) or ""
            # constants and aliases of other libraries' types (typing.Union ...) get no entry, in nbdev either
            if not home.startswith("twiga") or not (inspect.isclass(obj) or callable(obj)): continue
            found.add((home, name))
            if inspect.isclass(obj):
                # a method grown with fastcore's @patch is documented where it is written, its own module
                found |= {(_member_home(v, home), f"{name}.{attr}") for attr, v in vars(obj).items()
                          if not attr.startswith("_") and _is_member(v)}
    return sorted(found)


def test_public_api_has_an_entry_with_an_anchor(site, manifest):
    "Every public function, class, method and property has an entry on its module's page, at nbdev's anchor."
    page_of = {}
    for p in manifest["pages"]:
        for f in p["modules"]:
            mod = f[:-3].replace("/", ".")
            page_of[mod.removesuffix(".__init__")] = p["page"]
    ids = {}
    missing = []
    api = public_api()
    assert len(api) > 100, api
    for module, name in api:
        page = page_of.get(module)
        if page is None:
            missing.append(f"{module}.{name}: no notebook exports {module}")
            continue
        if page not in ids: ids[page] = _ids((site / page).read_text())
        if slug(name) not in ids[page]: missing.append(f"{module}.{name}: no entry #{slug(name)} on {page}")
    print(f"{len(api)} public symbols, {len(api) - len(missing)} with an entry")
    assert not missing, f"{len(missing)} of {len(api)} public symbols have no entry:\n" + "\n".join(missing)


# ---------------------------------------------------------------- in a real browser
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


@pytest.fixture(scope="module")
def server(site):
    "The site over HTTP on 127.0.0.1 (search needs HTTP, as a reader's `python -m http.server -d _site` gives)."
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"): pytest.fail(f"Chromium is required in CI: apt-get install -y chromium ({CHROMIUM})")
        pytest.skip(f"Chromium not installed at {CHROMIUM} (apt-get install -y chromium); required in CI")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield b
        b.close()


def _page(browser, base: str, outside: list):
    "A page that may load only from the site: any other request is recorded (and fails: CHROMIUM_FLAGS)."
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    # recorded as it is made, not intercepted: routing every request through Playwright costs ~20 s of CPU per pass
    ctx.on("request", lambda r: r.url.startswith((base, "data:", "blob:")) or outside.append(r.url))
    return ctx, ctx.new_page()


_JS_IDS = "() => [...document.querySelectorAll('[id]')].map(e => e.id)" \
          ".concat([...document.querySelectorAll('a[name]')].map(e => e.name))"
_JS_LINKS = "() => [...document.querySelectorAll('a[href]')].map(a => a.href)"
_JS_SEARCH_DONE = "() => /Search finished|did not match/.test(document.querySelector('#search-results')?.innerText)"
_JS_FIGURES = "() => [...document.querySelectorAll('script[data-lets-plot-script=\"plot\"]')]" \
              ".map(s => s.previousElementSibling).filter(d => !d || !d.querySelector('svg')).map(d => d && d.id)"
_JS_IMAGES = "() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src.slice(0, 120))"


@pytest.fixture(scope="module")
def visited(site, server, browser):
    ("Every page of the site opened in Chromium: its ids, links, console errors, failed requests, broken images and\n"
     "undrawn figures. The highlighted sources (_src/) are static HTML without scripts: read from their files.")
    rels = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    pages = [r for r in rels if r.split("/")[0] not in ("_static", "_sources", "_screenshots", bd.SRC_DIR)]
    seen = {r: {"ids": _ids((site / r).read_text()), "links": [], "errors": []} for r in rels
            if r.startswith(bd.SRC_DIR + "/")}
    outside, errors = [], []
    ctx, tab = _page(browser, server, outside)
    tab.on("console", lambda m: m.type == "error" and errors.append(f"console error: {m.text[:300]}"))
    tab.on("pageerror", lambda x: errors.append(f"page error: {x}"))
    # a request the next navigation cancels (the favicon, fetched after `load`) is aborted, not failed: a file
    # that is missing shows as an HTTP error below, an image that did not load in _JS_IMAGES
    tab.on("requestfailed", lambda r: r.failure != "net::ERR_ABORTED"
           and errors.append(f"request failed: {r.url[:200]} ({r.failure})"))
    tab.on("response", lambda r: r.status >= 400 and errors.append(f"HTTP {r.status}: {r.url[:200]}"))
    for rel in pages:
        errors.clear()
        tab.goto(server + rel, wait_until="load")
        errors += [f"image did not load: {src}" for src in tab.evaluate(_JS_IMAGES)]
        errors += [f"lets-plot figure not drawn: #{fig}" for fig in tab.evaluate(_JS_FIGURES)]
        seen[rel] = {"ids": set(tab.evaluate(_JS_IDS)), "links": tab.evaluate(_JS_LINKS), "errors": list(errors)}
    ctx.close()
    return {"pages": seen, "outside": outside}


def test_every_page_opens_without_errors(visited):
    problems = [f"{page}: {e}" for page, v in visited["pages"].items() for e in v["errors"]]
    problems += [f"a request left the site: {u}" for u in sorted(set(visited["outside"]))]
    assert not problems, "\n" + "\n".join(problems)


def test_every_internal_link_and_anchor_resolves(site, server, visited):
    pages, problems = visited["pages"], []
    for page, v in pages.items():
        for href in v["links"]:
            if not href.startswith(server): continue
            url = urlsplit(href)
            target = unquote(url.path[len(urlsplit(server).path):]) or "index.html"
            if target.endswith("/"): target += "index.html"
            if target not in pages and not (site / target).is_file():
                problems.append(f"{page}: link to a missing page {href[len(server):]}")
            elif url.fragment and target in pages and unquote(url.fragment) not in pages[target]["ids"]:
                problems.append(f"{page}: link to a missing anchor {href[len(server):]}")
    assert not problems, "\n" + "\n".join(sorted(set(problems)))


def _module_page(manifest, module: str) -> str:
    for p in manifest["pages"]:
        if any(f[:-3].replace("/", ".").removesuffix(".__init__") == module for f in p["modules"]): return p["page"]
    raise AssertionError(f"no page documents {module}")


def test_search_finds_the_pages_that_define(server, browser, manifest, capsys):
    "Sphinx's own search index, offline: each term finds the page that defines it."
    from twiga.core.settings import TwigaSettings
    from twiga.forecaster import TwigaForecaster
    from twiga.pipeline.flows import retraining_flow
    # the server's API key setting: its name (the settings' prefix + field) and its short alias TWIGA_API_KEY
    prefix = TwigaSettings.model_config.get("env_prefix", "")
    api_key = next(f"{prefix}{name}".upper() for name in TwigaSettings.model_fields if name.endswith("api_key"))
    settings_page = _module_page(manifest, TwigaSettings.__module__)
    terms = {"predict_interval": _module_page(manifest, TwigaForecaster.predict_interval.__module__),
             "retraining_flow": _module_page(manifest, retraining_flow.__module__),
             api_key: settings_page, "TWIGA_API_KEY": settings_page}
    outside = []
    ctx, tab = _page(browser, server, outside)
    problems = []
    for term, page in terms.items():
        tab.goto(f"{server}search.html?q={term}", wait_until="load")
        tab.wait_for_function(_JS_SEARCH_DONE, timeout=30_000)
        found = [urlsplit(h).path.lstrip("/") for h in tab.evaluate(
            "() => [...document.querySelectorAll('#search-results li a')].map(a => a.href)")]
        found = list(dict.fromkeys(found))   # pages, in order (a page can match at several sections)
        with capsys.disabled(): print(f"\nsearch {term!r}: {found}")
        if page not in found: problems.append(f"{term!r}: {page} not among the results {found}")
    ctx.close()
    assert not outside and not problems, "\n" + "\n".join(problems + outside)


def test_screenshots(site, server, browser, manifest, capsys):
    "The index, the forecaster page and the first tutorial, as a reader sees them (kept under <site>/_screenshots)."
    from twiga.forecaster import TwigaForecaster
    shots = site / "_screenshots"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir()
    tutorial = next(p["page"] for p in manifest["pages"] if p["notebook"].startswith("tutorials/"))
    outside = []
    ctx, tab = _page(browser, server, outside)
    from PIL import Image
    for page in ("index.html", _module_page(manifest, TwigaForecaster.__module__), tutorial):
        tab.goto(server + page, wait_until="load")
        png = shots / (page.replace("/", "_").removesuffix(".html") + ".png")
        tab.screenshot(path=str(png))
        colours = Image.open(png).convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 16, f"{png} looks blank"
        with capsys.disabled(): print(f"\nscreenshot: {png}")
    ctx.close()
    assert not outside
