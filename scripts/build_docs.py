"""Build twiga's docs site from the notebooks, without Quarto.

    python scripts/build_docs.py                      # every notebook under nbs/ -> _site/
    python scripts/build_docs.py --out /tmp/site --only 00_core.errors.ipynb 03_datasets.ipynb
    python scripts/build_docs.py --screenshots        # also render two pages in headless Chromium

Each notebook is executed the way `nbdev_test` runs it (in-process IPython shell via execnb, in the notebook's
folder, IN_TEST=1, cells flagged with settings.ini `tst_flags` or `#| eval: false` skipped), then passed through
nbdev's own docs processors (`nbdev.processors.FilterDefaults`, what `nbdev_proc_nbs` runs: front matter,
`show_doc` cells added and executed for every exported name, exported and hidden cells removed), written to the
processed-notebook folder (`_proc/` by default) and rendered to an HTML page: `#|` directive lines are stripped and
honoured (echo, output, include, eval, code-fold), raw Quarto markup (`:::` fenced divs, `{...}` attributes,
shortcodes) is converted or removed. Notebooks run in worker processes, `--jobs` at a time, each with a timeout.
The index page comes from nbs/index.ipynb (else README.md); every page gets a sidebar with every page, grouped
Tutorials / API / Jobs and ordered by file name. Exit status 1 if a notebook failed to execute or render.

nbdev_proc_nbs itself is not called: without Quarto it starts downloading and installing Quarto.
"""
from __future__ import annotations

import argparse
import base64
import configparser
import fnmatch
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
SKIP_PARTS = {"_proc", "_docs", "_site", ".ipynb_checkpoints", "_nbtmp"}
GROUPS = {"tutorials": "Tutorials", "": "API", "jobs": "Jobs"}
ASSET_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}
_ANSI = re.compile(r"\x1B(?:[@-Z\\-_]|\[[0-?]*[ -/]*[@-~])")
_DIRECTIVE = re.compile(r"^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$")


# ---------------------------------------------------------------- discovery
def find_notebooks(nbs: Path = NBS, only: list[str] | None = None) -> list[Path]:
    "Notebooks under `nbs` (recursively), by path; `only` keeps those matching a glob (plus index.ipynb)."
    found = []
    for p in sorted(nbs.rglob("*.ipynb")):
        rel = p.relative_to(nbs)
        if any(part in SKIP_PARTS or part.startswith((".", "_")) for part in rel.parts): continue
        if only and rel.as_posix() != "index.ipynb" and not any(
                fnmatch.fnmatch(rel.as_posix(), pat) or fnmatch.fnmatch(p.name, pat) for pat in only):
            continue
        found.append(p)
    return found


def page_path(nb: Path, nbs: Path = NBS) -> str:
    "The site path of a notebook's page, as nbdev names it: tutorials/01_getting_started.ipynb -> tutorials/getting_started.html."
    rel = nb.relative_to(nbs)
    name = re.sub(r"^\d+[a-zA-Z0-9]*_", "", rel.name.lower())[:-len(".ipynb")] + ".html"
    return (rel.parent / name).as_posix()


def group_of(rel: Path) -> str:
    "The sidebar group of a notebook by its folder: Tutorials, API (top level), Jobs, or the folder's name."
    folder = rel.parent.as_posix() if rel.parent != Path(".") else ""
    return GROUPS.get(folder, folder.replace("_", " ").title())


# ---------------------------------------------------------------- worker: execute, process, render one notebook
def _directives(src: str) -> tuple[dict[str, str], str]:
    "The `#|` directives of a cell and its source without them."
    d, keep = {}, []
    for line in src.splitlines():
        m = _DIRECTIVE.match(line)
        if m: d[m.group(1)] = m.group(2).strip().strip("'\"")
        else: keep.append(line)
    return d, "\n".join(keep).strip("\n")


def _text(v) -> str:
    return "".join(v) if isinstance(v, list) else (v or "")


def clean_quarto_markdown(md: str) -> str:
    "Markdown without raw Quarto markup: fenced divs become <div>s, attribute blocks and shortcodes go."
    out, depth = [], 0
    for line in md.splitlines():
        s = line.strip()
        m = re.match(r"^:{3,}\s*\{?([^}]*)\}?\s*$", s)
        if m and m.group(1).strip():
            classes = " ".join(c.lstrip(".") for c in m.group(1).split() if c.startswith("."))
            out += ["", f'<div class="{html.escape(classes)}">', ""]
            depth += 1
            continue
        if re.match(r"^:{3,}\s*$", s):
            if depth: out += ["", "</div>", ""]; depth -= 1
            continue
        line = re.sub(r"^(#{1,6}\s.*?)\s*\{[#.][^}]*\}\s*$", r"\1", line)   # heading {#id .class}
        line = re.sub(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)\{([^}]*)\}", _attr_link, line)   # [a](u){target=..}
        line = re.sub(r"(\]\([^)]*\))\{[^}]*\}", r"\1", line)                        # ![](img){width=50%}
        line = re.sub(r"\{\{<.*?>\}\}", "", line)                           # {{< shortcode >}}
        line = re.sub(r"^(\s*```+)\s*\{(\w+)[^}]*\}", r"\1\2", line)        # ```{python}
        out.append(line)
    return "\n".join(out + ["", "</div>"] * depth)


def _attr_link(m: re.Match) -> str:
    "A Pandoc link with attributes, `[text](url){target=... .class}`, as an HTML link."
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', m.group(3)))
    classes = " ".join(c[1:] for c in m.group(3).split() if c.startswith("."))
    extra = "".join(f' {k}="{html.escape(v)}"' for k, v in attrs.items() if k in ("target", "style", "title"))
    cls = f' class="{html.escape(classes)}"' if classes else ""
    return f'<a href="{html.escape(m.group(2))}"{cls}{extra}>{m.group(1)}</a>'


def slug(text: str) -> str:
    "Quarto's heading id: lower case, spaces to dashes, only letters, digits, `-`, `_` and `.` kept."
    text = re.sub(r"<[^>]+>", "", html.unescape(text)).strip().lower()
    return re.sub(r"[^\w.\-]", "", re.sub(r"\s+", "-", text))


def _markdown(md: str, attachments: dict | None = None) -> str:
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
    for name, data in (attachments or {}).items():
        mime, b64 = next(iter(data.items()))
        md = md.replace(f"attachment:{name}", f"data:{mime};base64,{_text(b64)}")
    out = MarkdownWithMath(renderer=IPythonRenderer(escape=False, exclude_anchor_links=True)).render(md)
    return re.sub(r'<h([1-6])( id="[^"]*")?>(.*?)</h\1>',
                  lambda m: f'<h{m.group(1)} id="{slug(m.group(3))}">{m.group(3)}</h{m.group(1)}>', out, flags=re.S)


def _code(src: str) -> str:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer
    return highlight(src, PythonLexer(), HtmlFormatter(cssclass="highlight"))


LETS_PLOT_LIB = re.compile(r'<script[^>]*data-lets-plot-script="library"[^>]*>.*?</script>', re.S)


def _html_output(h: str) -> tuple[str, bool]:
    "An HTML output ready to sit inside a page; True if it is a lets-plot figure (needs the library script)."
    if "data-lets-plot-script" not in h: return h, False
    h = LETS_PLOT_LIB.sub("", h)
    h = re.sub(r"<style>\s*html,\s*body\s*\{[^}]*\}\s*</style>", "", h)
    h = re.sub(r"</?(html|head|body)\b[^>]*>|<meta[^>]*>", "", h)
    return f'<div class="lets-plot">{h}</div>', True


def render_output(o: dict) -> tuple[str, bool]:
    "One cell output as HTML; True if it needs lets-plot's library."
    t = o.get("output_type")
    if t == "stream":
        txt = _ANSI.sub("", _text(o.get("text")))
        return (f'<pre class="stream {o.get("name", "stdout")}">{html.escape(txt)}</pre>' if txt.strip() else ""), False
    if t == "error":
        tb = _ANSI.sub("", "\n".join(o.get("traceback") or [f"{o.get('ename')}: {o.get('evalue')}"]))
        return f'<pre class="error">{html.escape(tb)}</pre>', False
    data = o.get("data", {})
    if "text/html" in data: return _html_output(_text(data["text/html"]))
    if "text/markdown" in data:
        return f'<div class="md-output">{_markdown(clean_quarto_markdown(_text(data["text/markdown"])))}</div>', False
    if "image/svg+xml" in data: return f'<div class="image">{_text(data["image/svg+xml"])}</div>', False
    for mime in ("image/png", "image/jpeg", "image/gif"):
        if mime in data:
            return f'<div class="image"><img src="data:{mime};base64,{_text(data[mime]).strip()}"></div>', False
    if "text/plain" in data: return f'<pre class="result">{html.escape(_ANSI.sub("", _text(data["text/plain"])))}</pre>', False
    return "", False


def render_cells(cells: list) -> tuple[str, bool, list[str]]:
    "The page body of processed notebook cells, whether it needs lets-plot, and the error messages."
    parts, needs_lp, errors = [], False, []
    for c in cells:
        ctype, src = c.get("cell_type"), c.get("source")
        src = _text(src) if src is not None else None
        if ctype == "raw": continue       # front matter (already read) and raw cells for other formats
        if ctype == "markdown":
            if src and src.strip() and not src.strip().startswith("<!-- WARNING: THIS FILE WAS AUTOGENERATED"):
                parts.append(f'<div class="md">{_markdown(clean_quarto_markdown(src), c.get("attachments"))}</div>')
            continue
        d, body = _directives(src or "")
        if d.get("include") == "false": continue
        outs = [] if d.get("output") == "false" else c.get("outputs", [])
        for o in outs:
            if o.get("output_type") == "error": errors.append(f"{o.get('ename')}: {o.get('evalue')}")
        rendered = [render_output(o) for o in outs]
        needs_lp |= any(lp for _, lp in rendered)
        out_html = "".join(h for h, _ in rendered if h)
        code = "" if (src is None or d.get("echo") == "false" or not body.strip()) else _code(body)
        if code and d.get("code-fold") in ("true", "show"):
            summary = html.escape(d.get("code-summary", "Code"))
            code = f'<details{" open" if d["code-fold"] == "show" else ""}><summary>{summary}</summary>{code}</details>'
        if not code and not out_html: continue
        inp = f'<div class="input">{code}</div>' if code else ""
        doc = not code and all(o.get("output_type") != "stream" and "text/markdown" in o.get("data", {}) for o in outs)
        outp = f'<div class="{"doc" if doc else "output"}">{out_html}</div>' if out_html else ""
        parts.append(f'<div class="cell">{inp}{outp}</div>')
    return "\n".join(parts), needs_lp, errors


def _test_flags() -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "settings.ini")
    return set(cfg["DEFAULT"].get("tst_flags", "").split())


def worker(src: Path, out_json: Path, proc_dir: Path, execute: bool) -> None:
    "Execute, process and render one notebook; write the page's parts to `out_json`."
    from execnb.nbio import read_nb, write_nb
    from execnb.shell import CaptureShell
    from fastcore.basics import AttrDict
    from fastcore.xtras import working_directory
    from nbdev.frontmatter import FrontmatterProc
    from nbdev.process import NBProcessor, extract_directives
    from nbdev.processors import FilterDefaults
    os.environ["IN_TEST"] = "1"
    t0, errors = time.time(), []
    fm = dict(getattr(NBProcessor(src, procs=FrontmatterProc, process=True).nb, "frontmatter_", {}) or {})
    nb = read_nb(src)   # nbdev's own processors need the directive lines that NBProcessor strips
    flags = _test_flags()

    def no_eval(cell):   # the cells nbdev_test skips
        if cell.cell_type != "code" or "nbdev_export(" in cell.source: return True
        d = extract_directives(AttrDict(source=cell.source), remove=False)
        return d.get("eval:", [""])[0].lower() == "false" or bool(flags & d.keys())

    if execute and str(fm.get("skip_exec", "")).lower() not in ("true", "1"):
        shell = CaptureShell(src)
        with working_directory(src.parent): shell.run_all(nb, exc_stop=False, preproc=no_eval)
    try:
        with working_directory(src.parent): FilterDefaults()(nb)
        fm = dict(getattr(nb, "frontmatter_", {}) or fm)
    except Exception as e:   # a show_doc or import cell that fails outside the notebook's flow
        errors.append(f"nbdev processing: {type(e).__name__}: {e} {getattr(e, '__cause__', '') or ''}".strip())
    rel = src.relative_to(NBS)
    proc_file = proc_dir / rel
    proc_file.parent.mkdir(parents=True, exist_ok=True)
    write_nb(nb, proc_file)
    cells = json.loads(proc_file.read_text())["cells"]
    body, needs_lp, cell_errors = render_cells(cells)
    out_json.write_text(json.dumps({
        "title": str(fm.get("title") or src.stem), "description": str(fm.get("description") or ""),
        "output_file": str(fm.get("output-file") or re.sub(r"^\d+[a-zA-Z0-9]*_", "", src.stem.lower()) + ".html"),
        "body": body, "lets_plot": needs_lp, "errors": errors + cell_errors, "seconds": round(time.time() - t0, 1)}))


# ---------------------------------------------------------------- parallel driver
def run_workers(notebooks: list[Path], work: Path, proc_dir: Path, jobs: int, timeout: float,
                execute: bool) -> dict[Path, dict]:
    "Run one worker process per notebook, `jobs` at a time; each is killed after `timeout` seconds."
    pending, running, results = list(notebooks), {}, {}
    env = {**os.environ, "IN_TEST": "1", "PYTHONUNBUFFERED": "1"}
    while pending or running:
        while pending and len(running) < jobs:
            nb = pending.pop(0)
            out = work / (nb.relative_to(NBS).as_posix().replace("/", "__") + ".json")
            log = open(work / (out.name + ".log"), "w")
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(nb), "--worker-out", str(out),
                   "--proc-dir", str(proc_dir)] + ([] if execute else ["--no-execute"])
            running[nb] = (subprocess.Popen(cmd, cwd=nb.parent, env=env, stdout=log, stderr=subprocess.STDOUT),
                           time.time(), out, log)
        time.sleep(0.2)
        for nb, (p, start, out, log) in list(running.items()):
            if p.poll() is None and time.time() - start < timeout: continue
            if p.poll() is None:
                p.kill(); p.wait()
            log.close()
            del running[nb]
            rel = nb.relative_to(NBS)
            if p.returncode == 0 and out.exists(): res = json.loads(out.read_text())
            else:
                tail = Path(log.name).read_text()[-3000:]
                why = f"timed out after {timeout:.0f} s" if time.time() - start >= timeout else f"worker exit {p.returncode}"
                res = {"title": nb.stem, "description": "", "body": f'<pre class="error">{html.escape(tail)}</pre>',
                       "output_file": re.sub(r"^\d+[a-zA-Z0-9]*_", "", nb.stem.lower()) + ".html",
                       "lets_plot": False, "errors": [f"{why}: {tail.strip().splitlines()[-1] if tail.strip() else ''}"],
                       "seconds": round(time.time() - start, 1)}
            results[nb] = res
            print(f"  {rel.as_posix():45s} {res['seconds']:6.1f} s{'  ERRORS: ' + '; '.join(res['errors']) if res['errors'] else ''}",
                  flush=True)
    return results


# ---------------------------------------------------------------- site assembly
CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --accent:#0b5cad; --bg2:#f6f8fa; }
* { box-sizing: border-box; }
body { margin:0; font-family: -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color:var(--fg); line-height:1.55; font-size:16px; }
a { color:var(--accent); text-decoration:none; } a:hover { text-decoration:underline; }
header.top { position:sticky; top:0; z-index:10; background:#0b5cad; color:#fff; height:52px; display:flex;
       align-items:center; padding:0 24px; gap:28px; }
header.top a { color:#fff; } header.top .brand { font-weight:700; font-size:20px; }
header.top nav a { margin-right:18px; opacity:.9; }
.layout { display:flex; align-items:flex-start; }
aside.sidebar { position:sticky; top:52px; width:260px; flex:none; height:calc(100vh - 52px); overflow-y:auto;
       padding:20px 16px; border-right:1px solid var(--line); background:var(--bg2); font-size:14px; }
aside.sidebar h4 { margin:18px 0 6px; font-size:12px; text-transform:uppercase; letter-spacing:.06em; color:var(--muted); }
aside.sidebar ul { list-style:none; margin:0; padding:0; } aside.sidebar li { margin:2px 0; }
aside.sidebar a { display:block; padding:3px 8px; border-radius:6px; color:var(--fg); }
aside.sidebar a.active { background:#dbe9f8; color:var(--accent); font-weight:600; }
main { flex:1; min-width:0; max-width:1000px; padding:28px 40px 80px; }
main h1.title { margin:0 0 6px; font-size:34px; } p.description { color:var(--muted); font-size:18px; margin:0 0 24px; }
aside.toc { position:sticky; top:52px; width:220px; flex:none; padding:28px 16px; font-size:13px; max-height:calc(100vh - 52px); overflow-y:auto; }
aside.toc ul { list-style:none; padding-left:0; margin:0; } aside.toc li.h3 { padding-left:12px; }
aside.toc h5 { margin:0 0 8px; color:var(--muted); text-transform:uppercase; letter-spacing:.06em; font-size:11px; }
@media (max-width: 1300px) { aside.toc { display:none; } }
.md h2 { border-bottom:1px solid var(--line); padding-bottom:4px; margin-top:36px; }
.md table, .md-output table { border-collapse:collapse; margin:12px 0; font-size:14px; }
.md th, .md td, .md-output th, .md-output td { border:1px solid var(--line); padding:4px 10px; }
code { background:var(--bg2); padding:1px 4px; border-radius:4px; font-size:88%; }
pre { overflow-x:auto; font-size:13.5px; line-height:1.45; }
.cell { margin:14px 0; }
.md pre { background:var(--bg2); border:1px solid var(--line); border-radius:6px; padding:8px 12px; }
.md .highlight pre { border:0; padding:0; }
.cell .doc { margin-top:6px; }
.cell .input .highlight, .md .highlight, .md-output .highlight { background:var(--bg2); border:1px solid var(--line);
       border-radius:6px; padding:0 12px; }
.cell .input pre { margin:8px 0; }
.cell .output { padding:4px 0 4px 12px; border-left:3px solid #e5e9ee; margin-top:6px; overflow-x:auto; }
.cell .output pre { margin:4px 0; } pre.stream.stderr { color:#8a5a00; } pre.error { color:#b3261e; background:#fdecea; padding:8px; }
.md-output hr { border:0; border-top:1px solid var(--line); margin:28px 0 8px; }
.md-output h3 { margin:8px 0; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size:19px; }
.md-output p > em { color:var(--muted); }
table.dataframe { border-collapse:collapse; font-size:13px; } table.dataframe th, table.dataframe td { border-bottom:1px solid var(--line); padding:3px 8px; text-align:right; }
details > summary { cursor:pointer; color:var(--muted); font-size:14px; }
.callout, .callout-note, .callout-tip, .callout-warning, .callout-important { border-left:4px solid var(--accent);
       background:#eef5fc; padding:4px 14px; margin:14px 0; border-radius:4px; }
.callout-warning, .callout-important { border-color:#d97706; background:#fff7e6; }
.lets-plot { overflow-x:auto; }
"""


def _rel(target: str, page: str) -> str:
    "The link from the page at site path `page` to site path `target`."
    return os.path.relpath(target, os.path.dirname(page) or ".").replace(os.sep, "/")


def _nav(pages: list[dict], current: str) -> str:
    groups: dict[str, list[dict]] = {}
    for p in pages:
        if p["path"] != "index.html": groups.setdefault(p["group"], []).append(p)
    order = [g for g in ("Tutorials", "API", "Jobs") if g in groups] + sorted(g for g in groups if g not in GROUPS.values())
    active = ' class="active"'
    out = [f'<ul><li><a href="{_rel("index.html", current)}"{active if current == "index.html" else ""}>Home</a></li></ul>']
    for g in order:
        items = "".join(f'<li><a href="{_rel(p["path"], current)}"{active if p["path"] == current else ""}>'
                        f'{html.escape(p["title"])}</a></li>' for p in groups[g])
        out.append(f"<h4>{g}</h4><ul>{items}</ul>")
    return "\n".join(out)


def _toc(body: str) -> str:
    heads = re.findall(r'<h([23]) id="([^"]*)">(.*?)</h\1>', body, flags=re.S)
    if len(heads) < 2: return ""
    items = "".join(f'<li class="h{lvl}"><a href="#{hid}">{re.sub(r"<[^>]+>", "", text)}</a></li>' for lvl, hid, text in heads)
    return f'<aside class="toc"><h5>On this page</h5><ul>{items}</ul></aside>'


def _fix_links(body: str, page: str, nb_rel: str | None, nb_pages: dict[str, str], doc_root: str) -> str:
    "Absolute links to the configured doc host and links to .ipynb files become links inside the site."
    if doc_root: body = body.replace(f'href="{doc_root}', f'href="{_rel("index.html", page).rsplit("index.html", 1)[0]}')

    def ipynb(m):
        target, frag = m.group(1), m.group(2) or ""
        base = os.path.dirname(nb_rel) if nb_rel else ""
        key = os.path.normpath(os.path.join(base, target)).replace(os.sep, "/")
        if key in nb_pages: return f'href="{_rel(nb_pages[key], page)}{frag}"'
        if (NBS / key).is_file(): return f'href="{_rel(page_path(NBS / key), page)}{frag}"'  # a page this build skipped
        return m.group(0)
    return re.sub(r'href="(?!https?:|/)([^"#]+\.ipynb)(#[^"]*)?"', ipynb, body)


def page_html(site_title: str, page: dict, pages: list[dict], body: str) -> str:
    cur = page["path"]
    first = {g: next((p["path"] for p in pages if p["group"] == g and p["path"] != "index.html"), None)
             for g in ("Tutorials", "API", "Jobs")}
    topnav = "".join(f'<a href="{_rel(t, cur)}">{g}</a>' for g, t in first.items() if t)
    lp = f'<script src="{_rel("_static/lets-plot.min.js", cur)}"></script>' if page.get("lets_plot") else ""
    inline = re.sub(r"^<p>|</p>\s*$", "", _markdown(html.escape(page["description"], quote=False)).strip())
    desc = f'<p class="description">{inline}</p>' if page["description"] else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(page["title"])} – {html.escape(site_title)}</title>
<link rel="stylesheet" href="{_rel("_static/site.css", cur)}"><link rel="stylesheet" href="{_rel("_static/pygments.css", cur)}">
{lp}</head>
<body><header class="top"><a class="brand" href="{_rel("index.html", cur)}">{html.escape(site_title)}</a><nav>{topnav}</nav></header>
<div class="layout"><aside class="sidebar">{_nav(pages, cur)}</aside>
<main><h1 class="title">{html.escape(page["title"])}</h1>{desc}
{body}
</main>{_toc(body)}</div></body></html>
"""


def _settings() -> dict:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "settings.ini")
    return dict(cfg["DEFAULT"])


def build(out: Path, proc_dir: Path, only: list[str] | None = None, jobs: int = 2, timeout: float = 900,
          execute: bool = True) -> tuple[list[dict], list[str]]:
    "Build the site into `out`; return the pages and the errors."
    t0 = time.time()
    settings = _settings()
    notebooks = find_notebooks(NBS, only)
    if out.exists():
        for child in out.iterdir():
            if child.name != "_screenshots": shutil.rmtree(child) if child.is_dir() else child.unlink()
    out.mkdir(parents=True, exist_ok=True)
    proc_dir.mkdir(parents=True, exist_ok=True)
    print(f"==> {len(notebooks)} notebooks, {jobs} at a time -> {out}", flush=True)
    timings_file = proc_dir / ".timings.json"   # slowest first (last build's times), so 2 workers finish together
    timings = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    ordered = sorted(notebooks, key=lambda p: -timings.get(p.relative_to(NBS).as_posix(), float("inf")))
    with tempfile.TemporaryDirectory(prefix="twiga-docs-") as work:
        results = run_workers(ordered, Path(work), proc_dir, jobs, timeout, execute)
    timings.update({nb.relative_to(NBS).as_posix(): r["seconds"] for nb, r in results.items()})
    timings_file.write_text(json.dumps(timings, indent=1, sort_keys=True))
    pages, errors = [], []
    for nb in notebooks:
        r, rel = results[nb], nb.relative_to(NBS)
        path = (rel.parent / r["output_file"]).as_posix() if rel.parent != Path(".") else r["output_file"]
        pages.append({**r, "path": path, "nb": rel.as_posix(), "group": group_of(rel)})
        errors += [f"{rel.as_posix()}: {e}" for e in r["errors"]]
    dup = {p["path"] for p in pages if sum(q["path"] == p["path"] for q in pages) > 1}
    if dup: errors.append(f"several notebooks render to the same page(s): {sorted(dup)}")
    if not any(p["path"] == "index.html" for p in pages):
        readme = (ROOT / "README.md").read_text() if (ROOT / "README.md").exists() else f"# {settings.get('title')}"
        m = re.search(r"^#\s+(.+)$", readme, flags=re.M)
        rest = re.sub(r"^#\s+.+$", "", readme, count=1, flags=re.M)
        body = '<div class="md">' + _markdown(clean_quarto_markdown(rest)) + "</div>"
        pages.insert(0, {"title": m.group(1) if m else settings.get("title", "twiga"), "description": "", "body": body,
                         "path": "index.html", "nb": None, "group": "", "lets_plot": False})
    nb_pages = {p["nb"]: p["path"] for p in pages if p["nb"]}
    doc_root = settings.get("doc_host", "").rstrip("/") + "/" + settings.get("doc_baseurl", "/").strip("/")
    doc_root = doc_root.rstrip("/") + "/" if settings.get("doc_host") else ""
    site_title = settings.get("title", "twiga")
    for p in pages:
        target = out / p["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        body = _fix_links(p["body"], p["path"], p["nb"], nb_pages, doc_root)
        target.write_text(page_html(site_title, p, pages, body))
    _static(out)
    for f in NBS.rglob("*"):
        rel = f.relative_to(NBS)
        if f.suffix.lower() in ASSET_SUFFIXES and not any(x in SKIP_PARTS or x.startswith(".") for x in rel.parts):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, out / rel)
    print(f"==> {len(pages)} pages in {time.time() - t0:.1f} s: {out / 'index.html'}", flush=True)
    return pages, errors


def _static(out: Path) -> None:
    from pygments.formatters import HtmlFormatter
    static = out / "_static"
    static.mkdir(exist_ok=True)
    (static / "site.css").write_text(CSS)
    (static / "pygments.css").write_text(HtmlFormatter(style="default").get_style_defs(".highlight"))
    import lets_plot
    shutil.copy2(Path(lets_plot.__file__).parent / "package_data" / "lets-plot.min.js", static / "lets-plot.min.js")
    (out / ".nojekyll").write_text("")


# ---------------------------------------------------------------- headless Chromium
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                  "--hide-scrollbars", "--virtual-time-budget=15000"]


def find_chromium() -> str | None:
    "The Chromium (or Chrome) executable, if one is installed."
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name): return shutil.which(name)
    return None


def chromium(args: list[str], url: str, timeout: float = 120) -> subprocess.CompletedProcess:
    "Run headless Chromium with a throw-away profile on `url`."
    exe = find_chromium()
    if exe is None: raise RuntimeError("Chromium not found: apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="twiga-chromium-") as profile:
        return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
                              capture_output=True, text=True, timeout=timeout)


def dump_dom(page: Path) -> str:
    "The DOM of a page after its scripts ran, as headless Chromium serialises it."
    res = chromium(["--dump-dom"], page.resolve().as_uri())
    if res.returncode != 0: raise RuntimeError(f"chromium --dump-dom failed ({res.returncode}): {res.stderr[-2000:]}")
    return res.stdout


def screenshot(page: Path, png: Path, size: tuple[int, int] = (1280, 900)) -> Path:
    "A PNG screenshot of a page in headless Chromium."
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    res = chromium([f"--screenshot={png.resolve()}", f"--window-size={size[0]},{size[1]}"], page.resolve().as_uri())
    if res.returncode != 0 or not png.exists():
        raise RuntimeError(f"chromium --screenshot failed ({res.returncode}): {res.stderr[-2000:]}")
    return png


def png_stats(png: Path) -> dict:
    "Size, number of distinct colours and share of near-white pixels of an 8-bit RGB(A) PNG (no Pillow needed)."
    import struct
    import zlib
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR": w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT": idat += chunk
        pos += 12 + n
    assert depth == 8 and ctype in (2, 6) and interlace == 0, f"unsupported PNG format in {png}"
    bpp = 3 if ctype == 2 else 4
    raw, stride, prev, rows = zlib.decompress(idat), w * bpp, bytearray(w * bpp), []
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a, b = (line[i - bpp] if i >= bpp else 0), prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line)); prev = line
    px = [r[i:i + 3] for r in rows[::4] for i in range(0, stride, bpp * 4)]   # every 4th pixel both ways
    return {"width": w, "height": h, "colors": len(set(px)),
            "white_share": sum(1 for p in px if min(p) > 245) / len(px)}


def check_in_browser(out: Path, pages: list[dict], shots: Path) -> list[Path]:
    "Screenshot the index and the first API page into `shots`; raise if a page does not show its title."
    api = next(p for p in pages if p["group"] == "API")
    saved = []
    for p in (next(p for p in pages if p["path"] == "index.html"), api):
        dom = dump_dom(out / p["path"])
        if html.escape(p["title"]) not in dom and p["title"] not in dom:
            raise RuntimeError(f"{p['path']}: title {p['title']!r} not in the rendered page")
        png = screenshot(out / p["path"], shots / (Path(p["path"]).stem + ".png"))
        stats = png_stats(png)
        if stats["colors"] < 8 or stats["white_share"] > 0.995:
            raise RuntimeError(f"{png} looks blank: {stats}")
        saved.append(png)
        print(f"    screenshot {png} ({stats['width']}x{stats['height']}, {stats['colors']} colours)", flush=True)
    return saved


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "_site", help="site folder (default: _site)")
    ap.add_argument("--proc-dir", type=Path, default=None, help="processed notebooks (default: _proc, or OUT/_proc with --out)")
    ap.add_argument("--only", nargs="*", default=None, help="notebook globs to build (index.ipynb always)")
    ap.add_argument("--jobs", type=int, default=2, help="notebooks executed at a time (default 2)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per notebook (default 900)")
    ap.add_argument("--no-execute", action="store_true", help="render stored outputs; run only nbdev's show_doc cells")
    ap.add_argument("--allow-errors", action="store_true", help="exit 0 even if a notebook failed")
    ap.add_argument("--screenshots", action="store_true", help="check the index and an API page in headless Chromium")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        worker(a.worker.resolve(), a.worker_out, a.proc_dir, not a.no_execute)
        return 0
    out = a.out.resolve()
    proc = (a.proc_dir or (ROOT / "_proc" if out == (ROOT / "_site").resolve() else out / "_proc")).resolve()
    pages, errors = build(out, proc, a.only, a.jobs, a.timeout, not a.no_execute)
    if a.screenshots: check_in_browser(out, pages, out / "_screenshots")
    if errors:
        print("==> errors:\n  " + "\n  ".join(errors), file=sys.stderr)
        return 0 if a.allow_errors else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
