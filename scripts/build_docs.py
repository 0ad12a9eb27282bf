"""Build twiga's docs site from the notebooks: every notebook executed once (this build is the notebook test), then
rendered by Sphinx.

    python scripts/build_docs.py                                   # every notebook in nbs/ -> _site/
    python scripts/build_docs.py --keep-outputs nbs/tutorials/01_getting_started.ipynb   # shown as committed
    python scripts/build_docs.py --only 03_datasets.ipynb          # execute only these; the rest as plain pages

1. Each notebook under nbs/ (folders starting with `_` or `.` skipped, as `nbdev_test` does) is executed the way
   `nbdev_test` runs it: in-process IPython shell (execnb) in the notebook's folder, `IN_TEST=1`, cells flagged
   with settings.ini `tst_flags` or `#| eval: false` skipped, stopping at the first error. nbdev's `show_doc`
   cells are inserted first (nbdev's `add_show_docs`) and run in the same shell, after the code they document.
   Notebooks given to `--keep-outputs` (their committed outputs are checked by nbval) or with `skip_exec: true`
   in their front matter are not executed: their pages show the committed outputs.
2. nbdev's own docs processors (`nbdev.processors.FilterDefaults`, what `nbdev_proc_nbs` runs for Quarto) hide
   exported, hidden and `#| exporti` cells, turn `show_doc` cells into output-only cells and link backticked names.
3. The processed notebooks are written to _proc/ under nbdev's page names (`16_forecaster.ipynb` ->
   `forecaster.ipynb`, so `forecaster.html`), `show_doc` entries as Markdown sections with nbdev's anchors
   (`#twigaforecaster.fit`), Quarto cell options (`echo`, `output`, `include`, `code-fold`) as myst-nb cell tags,
   links to notebooks and to the configured doc host as links inside the site; the index page gets the sidebar
   (Tutorials, API in file-name order, then the other folders).
4. Sphinx (docs/conf.py: myst-nb, the PyData book theme, Sphinx's offline search) renders _proc/ into the site;
   every Sphinx warning (a broken cross-reference, a missing image, bad markup) fails the build. The generated
   modules (twiga/**.py) get highlighted source pages (_src/), the target of every entry's `source` link.

Exit status 1 if a cell failed, nbdev's processing failed (the page would fall back to source) or Sphinx warned;
each problem names the notebook and the cell. _site/_docs.json records pages, timings and documented symbols.
"""
from __future__ import annotations

import argparse
import configparser
import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "docs"
ASSET_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}
SRC_DIR = "_src"          # highlighted sources of twiga/ in the site
MANIFEST = "_docs.json"   # what the build did, read by tests/test_docs.py


# ---------------------------------------------------------------- settings and discovery
def settings(root: Path = ROOT) -> dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(root / "settings.ini")
    return dict(cfg["DEFAULT"])


def find_notebooks(nbs: Path) -> list[Path]:
    "Every notebook under `nbs`, skipping folders and files that start with `_` or `.` (as nbdev_test does)."
    return [p for p in sorted(nbs.rglob("*.ipynb"))
            if not any(part.startswith(("_", ".")) for part in p.relative_to(nbs).parts)]


def doc_name(rel: PurePosixPath) -> PurePosixPath:
    "The processed notebook of notebook `rel` (relative to nbs/), named as nbdev names its page, without suffix."
    return rel.with_name(re.sub(r"^\d+[a-zA-Z0-9]*_", "", rel.name.lower())).with_suffix("")


def page_path(rel: PurePosixPath) -> str:
    "The page of notebook `rel` in the site: `16_forecaster.ipynb` -> `forecaster.html`."
    return doc_name(rel).as_posix() + ".html"


# ---------------------------------------------------------------- links: notebooks, doc host, source files
class Links:
    "Rewrites the links nbdev and authors write into links inside the site, for the document of one notebook."
    def __init__(self, rel: PurePosixPath, notebooks: list[PurePosixPath], cfg: dict[str, str]):
        self.rel, self.here = rel, doc_name(rel).parent.as_posix() or "."
        self.docs = {nb.as_posix(): doc_name(nb) for nb in notebooks}
        self.pages = {page_path(nb): doc_name(nb) for nb in notebooks}
        host = cfg.get("doc_host", "").rstrip("/") + "/" + cfg.get("doc_baseurl", "/").strip("/")
        self.doc_root = host.rstrip("/") + "/" if cfg.get("doc_host") else None
        self.git_blob = cfg.get("git_url", "").rstrip("/") + f"/blob/{cfg.get('branch', 'main')}/"

    def _rel(self, target: str) -> str:
        return posixpath.relpath(target, self.here)

    def url(self, url: str, html: bool = False) -> str | None:
        "`url` inside the site (`.ipynb` in Markdown cells, which Sphinx checks; `.html` in outputs), None: no link."
        ext = ".html" if html else ".ipynb"
        path, hash_, frag = url.partition("#")
        if self.doc_root and url.startswith(self.doc_root):
            if frag.rsplit(".", 1)[-1].startswith("_"): return None   # a private name: linked by nbdev, not documented
            doc = self.pages.get(path[len(self.doc_root):] or "index.html")
            if doc is not None: return self._rel(doc.as_posix() + ext) + hash_ + frag
        elif url.startswith(self.git_blob):
            line = f"#L-{frag[1:]}" if re.fullmatch(r"L\d+", frag) else ""
            return self._rel(f"{SRC_DIR}/{path[len(self.git_blob):]}.html") + line
        elif path.endswith(".ipynb") and "://" not in path:
            key = posixpath.normpath(posixpath.join(self.rel.parent.as_posix(), path))
            if key in self.docs: return self._rel(self.docs[key].as_posix() + ext) + hash_ + frag
        return url

    def markdown(self, md: str, html: bool = False) -> str:
        "Every Markdown link of `md` through `url`; a link to nothing keeps its text."
        def sub(m):
            url = self.url(m.group(2), html)
            return m.group(1) if url is None else f"[{m.group(1)}]({url})"
        return re.sub(r"\[([^\]]*)\]\(([^)\s]+)\)", sub, md)


_CALLOUT = re.compile(r"^(:{3,})\s*\{\.callout-(\w+)[^}]*\}\s*$", re.M)
_FENCED_DIV = re.compile(r"^(:{3,})\s*\{([.#][^}]*)\}\s*$", re.M)
_HEADING_ID = re.compile(r"^(#{1,6}\s.*?)\s*\{#([\w.:-]+)[^}]*\}\s*$", re.M)


def quarto_to_myst(md: str) -> str:
    "Quarto's Markdown that MyST reads differently: callouts, fenced divs, heading ids, shortcodes."
    md = _CALLOUT.sub(lambda m: f"{m.group(1)}{{{m.group(2)}}}", md)
    md = _FENCED_DIV.sub(lambda m: f"{m.group(1)}{{container}} " + " ".join(
        c[1:] for c in m.group(2).split() if c.startswith(".")), md)
    md = _HEADING_ID.sub(lambda m: f"({m.group(2)})=\n{m.group(1)}", md)
    return re.sub(r"\{\{<.*?>\}\}", "", md)


# ---------------------------------------------------------------- one notebook: execute, process, convert
_QUARTO_OPT = re.compile(r"^#\|\s*([\w-]+)\s*:\s*(.*?)\s*$")


def cell_options(src: str) -> tuple[dict[str, str], str]:
    "The Quarto cell options (`#| echo: false`) nbdev leaves at the top of a processed cell, and the code after them."
    opts, lines = {}, src.splitlines()
    while lines and (m := _QUARTO_OPT.match(lines[0])):
        opts[m.group(1)] = m.group(2).strip("'\"").lower()
        lines.pop(0)
    return opts, "\n".join(lines).strip("\n")


def _text(v) -> str:
    return "".join(v) if isinstance(v, list) else (v or "")


# scripts/build_readme.py reads index.ipynb with these two as well
_ANSI = re.compile(r"\x1B(?:[@-Z\\-_]|\[[0-?]*[ -/]*[@-~])")
_DIRECTIVE = re.compile(r"^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$")


def _directives(src: str) -> tuple[dict[str, str], str]:
    "The `#|` directives of a cell and its source without them."
    d, keep = {}, []
    for line in src.splitlines():
        m = _DIRECTIVE.match(line)
        if m: d[m.group(1)] = m.group(2).strip().strip("'\"")
        else: keep.append(line)
    return d, "\n".join(keep).strip("\n")


_SD_SOURCE = re.compile(r"^\[source\]\(([^)]+)\)(\{[^}]*\})?\s*$", re.M)
_SD_HEADING = re.compile(r"^(#{1,6}) (.+)$", re.M)


def show_doc_markdown(md: str, links: Links) -> str:
    "A `show_doc` output as a Markdown section: nbdev's heading (anchor as nbdev's), then source link and signature."
    md = re.sub(r"^\s*---\s*\n", "", md)   # nbdev's rule above each entry: the theme draws sections
    src = _SD_SOURCE.search(md)
    md = _SD_SOURCE.sub("", md).strip()
    if src:
        link = f'<a class="sd-source" href="{links.url(src.group(1), html=True)}">source</a>'
        md = _SD_HEADING.sub(lambda m: f"{m.group(0)}\n\n{link}", md, count=1)
    return links.markdown(md)


LETS_PLOT_LIBRARY = re.compile(r'<script[^>]*data-lets-plot-script="library"[^>]*>.*?</script>', re.S)
LETS_PLOT_READY = '<script type="text/javascript">window.letsPlotCall = function(f) { f(); };</script>'


def lets_plot_html(h: str) -> str:
    ("A lets-plot figure as part of a page: its loader (the library inline, or fetched from a CDN) becomes a line\n"
     "that says the library is there (the page loads the site's copy first, see docs/docs_ext.py); no page-wide style.")
    if "data-lets-plot-script" not in h: return h
    h = LETS_PLOT_LIBRARY.sub(LETS_PLOT_READY, h)
    h = re.sub(r"<style>\s*html,\s*body\s*\{[^}]*\}\s*</style>", "", h)
    return re.sub(r"</?(html|head|body)\b[^>]*>|<meta[^>]*>", "", h)


def convert_output(o: dict, links: Links) -> dict:
    "One output as myst-nb shows it: lets-plot figures use the site's copy of the library; links point inside the site."
    data = o.get("data")
    if not data: return o
    if "text/html" in data: data["text/html"] = links.markdown(lets_plot_html(_text(data["text/html"])), html=True)
    if "text/markdown" in data: data["text/markdown"] = links.markdown(_text(data["text/markdown"]), html=True)
    return o


def to_myst(cells: list[dict], fm: dict, rel: PurePosixPath, links: Links, modules: list[str]) -> tuple[dict, dict]:
    "The processed cells as the notebook myst-nb renders, and what the page holds (cell map, documented symbols)."
    title = str(fm.get("title") or rel.stem)
    head = f"# {title}\n"
    if fm.get("description"): head += f"\n{{.description}}\n{fm['description']}\n"
    if modules:
        srcs = ", ".join(f'<a href="{links._rel(f"{SRC_DIR}/{m}.html")}"><code>{m}</code></a>' for m in modules)
        head += f'\n{{.page-source}}\nNotebook <code>nbs/{rel.as_posix()}</code>, module {srcs}\n'
    out, cell_map, symbols = [_md_cell(head)], [None], []
    for c in cells:
        kind, src = c["cell_type"], _text(c.get("source"))
        if kind == "raw" or src.strip().startswith("<!-- WARNING: THIS FILE WAS AUTOGENERATED"): continue
        if kind == "markdown":
            cell = _md_cell(links.markdown(quarto_to_myst(src)))
            if c.get("attachments"): cell["attachments"] = c["attachments"]
        else:
            opts, code = cell_options(src)
            if opts.get("include") == "false": continue
            md_outs = [_text(o["data"]["text/markdown"]) for o in c.get("outputs", [])
                       if "text/markdown" in o.get("data", {})]
            if code.startswith("show_doc(") and md_outs:
                symbols += _SD_HEADING.findall(md_outs[0])[:1]
                cell = _md_cell(show_doc_markdown(md_outs[0], links))
            else:
                tags = ["remove-input"] if opts.get("echo") == "false" else []
                tags += ["remove-output"] if opts.get("output") == "false" else []
                tags += ["hide-input"] if opts.get("code-fold") == "true" else []
                outs = [convert_output(o, links) for o in c.get("outputs", [])]
                if not outs and (not code or "remove-input" in tags): continue
                cell = {"cell_type": "code", "execution_count": None, "metadata": {"tags": tags} if tags else {},
                        "outputs": outs, "source": code}
        out.append(cell)
        cell_map.append(c.get("metadata", {}).get("twiga_cell"))
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb = {"cells": out, "metadata": {"kernelspec": kernel, "language_info": {"name": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    return nb, {"cell_map": cell_map, "symbols": [s[1] for s in symbols]}


def _md_cell(src: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": src}


def _error_text(cell, idx: int | None) -> str:
    err = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
    what = f"{err['ename']}: {err['evalue']}" if err else "failed"
    where = f"cell {idx}" if idx is not None else f"nbdev's inserted `{cell.source.strip()}`"
    first = next((ln for ln in cell.source.splitlines() if ln.strip() and not ln.startswith("#|")), "")
    return f"{where} failed: {what.strip()}  [{first.strip()[:80]}]"


def add_method_docs(nb) -> None:
    "`show_doc` cells for the public methods and properties written in an exported class's body, after the class's."
    import ast

    from nbdev.processors import _want_doc  # the exported cells nbdev's add_show_docs documents
    shown = {c.source.strip() for c in nb.cells if c.cell_type == "code" and c.source.strip().startswith("show_doc(")}
    methods: dict[str, list[str]] = {}
    for cell in nb.cells:
        if not _want_doc(cell): continue
        try: tree = ast.parse(cell.source)
        except SyntaxError: continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                defs = [f for f in node.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
                methods[node.name] = [f"{node.name}.{f.name}" for f in defs if not f.name.startswith("_")]
    from execnb.nbio import mk_cell
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        m = re.fullmatch(r"show_doc\((\w+)\)", cell.source.strip()) if getattr(cell, "has_sd", False) else None
        for nm in methods.get(m.group(1), []) if m else []:
            if f"show_doc({nm})" in shown: continue
            new = mk_cell(f"show_doc({nm})")
            new.has_sd = True
            cells.append(new)
    nb.cells = cells


def worker(src: Path, nbs: Path, proc_dir: Path, mode: str, out_json: Path) -> None:
    "Execute (mode `run`), process and convert one notebook; `keep` shows committed outputs, `plain` runs nothing."
    os.environ["IN_TEST"] = "1"
    from execnb.nbio import read_nb
    from execnb.shell import CaptureShell
    from fastcore.basics import AttrDict
    from fastcore.xtras import working_directory
    from nbdev.frontmatter import FrontmatterProc
    from nbdev.process import NBProcessor
    from nbdev.processors import FilterDefaults, add_show_docs, populate_language
    t0, errors, processed = time.time(), [], False
    cfg = settings(nbs.parent)
    rel = PurePosixPath(src.relative_to(nbs).as_posix())
    nb = read_nb(src)
    for i, cell in enumerate(nb.cells): cell.metadata["twiga_cell"] = i
    flags = set(cfg.get("tst_flags", "").split())

    def skip(cell) -> bool:   # the cells nbdev_test skips
        if cell.cell_type != "code" or "nbdev_export(" in cell.source: return True
        d = getattr(cell, "directives_", None) or {}
        return d.get("eval:", [""])[0].lower() == "false" or bool(flags & d.keys())

    procs = FilterDefaults().procs()
    try:
        first = NBProcessor(nb=nb, procs=[FrontmatterProc, populate_language, add_show_docs], rm_directives=False)
        first.process()
        add_method_docs(nb)
        for cell in nb.cells: cell.metadata = AttrDict(cell.metadata)   # nbdev's new cells carry a plain dict
        fm = dict(getattr(nb, "frontmatter_", {}) or {})
        if mode == "run" and str(fm.get("skip_exec", "")).lower() in ("true", "1"): mode = "keep"
        if mode == "run":
            shell = CaptureShell(src)
            shell.run_cell("from nbdev.showdoc import show_doc")   # as nbdev's exec_show_docs does
            with working_directory(src.parent):
                for cell in nb.cells:
                    if skip(cell): continue
                    shell.cell(cell)
                    if shell.exc:
                        errors.append(_error_text(cell, cell.metadata.get("twiga_cell")))
                        break
        skip_names = {"add_show_docs", "exec_show_docs"} if mode in ("run", "plain") else set()
        rest = [p for p in procs if getattr(p, "__name__", "") not in skip_names]
        with working_directory(src.parent): NBProcessor(nb=nb, procs=rest).process()
        fm, processed = dict(getattr(nb, "frontmatter_", {}) or fm), True
    except Exception as e:
        cause = f" ({type(e.__cause__).__name__}: {e.__cause__})" if e.__cause__ else ""
        errors.append(f"nbdev's docs processing failed, the page would fall back to source: "
                      f"{type(e).__name__}: {e}{cause}".replace("\n", " ")[:600])
        fm = {}
    from execnb.nbio import nb2dict
    cells = nb2dict(nb)["cells"] if processed else []   # never the unprocessed source
    notebooks = [PurePosixPath(p.relative_to(nbs).as_posix()) for p in find_notebooks(nbs)]
    links = Links(rel, notebooks, cfg)
    modules = _modules_of(src, cfg)
    myst_nb, info = to_myst(cells, fm, rel, links, modules)
    target = proc_dir / (doc_name(rel).as_posix() + ".ipynb")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(myst_nb, indent=1))
    out_json.write_text(json.dumps({
        "notebook": rel.as_posix(), "doc": doc_name(rel).as_posix(), "page": page_path(rel),
        "title": str(fm.get("title") or rel.stem), "description": str(fm.get("description") or ""),
        "mode": mode, "modules": modules, "errors": errors, "seconds": round(time.time() - t0, 1),
        "cpu_seconds": round(_cpu_seconds(), 1), **info}))


def _cpu_seconds() -> float:
    "CPU time of this process and the children it waited for (servers a notebook started and stopped)."
    import resource
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def _modules_of(src: Path, cfg: dict) -> list[str]:
    "The files of twiga/ a notebook exports to (`#| default_exp`, `#| export module`)."
    nb = json.loads(src.read_text())
    mods, default = [], None
    for c in nb["cells"]:
        s = _text(c["source"])
        if m := re.search(r"^#\|[ \t]*default_exp[ \t]+(\S+)", s, re.M): default = m.group(1)
        for m in re.finditer(r"^#\|[ \t]*export[si]?[ \t]*(\S*)[ \t]*$", s, re.M):
            mods.append(m.group(1) or default)
    lib = cfg.get("lib_path", "twiga")
    files = {f"{lib}/{m.replace('.', '/')}" for m in mods if m}
    root = src.parent if (src.parent / "settings.ini").exists() else next(
        (p for p in src.parents if (p / "settings.ini").exists()), src.parent)
    return sorted(f"{f}/__init__.py" if (root / f / "__init__.py").exists() else f"{f}.py" for f in files)


# ---------------------------------------------------------------- the driver
# What the workers import. Each notebook runs in a process of its own; on POSIX it is forked from the build's process
# after these are imported once, so a notebook pays for its own cells, not for importing Evidently (12 s of CPU),
# Prefect (7 s), MLflow, LightGBM and nbdev again: that is most of an API page's time. MACHINERY is what every worker
# runs on; a library of PRELOAD only when a notebook to execute imports it, or imports the project's own package (whose
# modules import them: twiga's notebooks). twiga itself is not preloaded (notebooks check how its modules import), nor
# is anything that starts a thread.
MACHINERY = ("fastcore.all", "IPython", "execnb.shell", "nbdev.process", "nbdev.processors", "nbdev.showdoc",
             "nbdev.frontmatter")
PRELOAD = ("pandas", "numpy", "sklearn", "lightgbm", "scipy.stats", "pyarrow", "pydantic", "matplotlib", "lets_plot",
           "httpx", "fastapi", "starlette.testclient", "uvicorn", "mlflow", "prefect", "evidently")
_IMPORT = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", re.M)


def imported_packages(notebooks: list[Path]) -> set[str]:
    "The top-level packages the code cells of `notebooks` import."
    names = set()
    for nb in notebooks:
        for c in json.loads(nb.read_text()).get("cells", []):
            if c.get("cell_type") == "code": names |= set(_IMPORT.findall(_text(c.get("source"))))
    return names


def to_preload(notebooks: list[Path], lib_name: str) -> tuple[str, ...]:
    "MACHINERY, and the PRELOAD libraries `notebooks` use (all of them when they import the project's package)."
    used = imported_packages(notebooks)
    return MACHINERY + tuple(m for m in PRELOAD if lib_name in used or m.split(".")[0] in used)


def preload(names: tuple[str, ...] = MACHINERY + PRELOAD) -> bool:
    "Import `names` into this process; False (the workers then start afresh) if fork is unsafe here."
    import importlib
    import threading
    if not hasattr(os, "fork"): return False
    import warnings
    with warnings.catch_warnings():   # what an import warns about, a notebook that imports it shows itself
        warnings.simplefilter("ignore")
        for name in names:
            try: importlib.import_module(name)
            except ImportError: pass
    if threading.active_count() > 1:   # forking a process with threads can deadlock the child
        print(f"  (preloading started {threading.active_count() - 1} thread(s): notebooks start afresh)", flush=True)
        return False
    return True


class Forked:
    "A notebook's worker forked from this process: the `subprocess.Popen` calls `run_workers` needs."
    def __init__(self, args: list[str], cwd: Path, env: dict, log):
        sys.stdout.flush(); sys.stderr.flush()
        self.pid, self.returncode = os.fork(), None
        if self.pid: return
        code = 1
        try:   # the child: the notebook's folder and environment, output to its log, then the worker
            os.chdir(cwd)
            os.environ.clear(); os.environ.update(env)
            os.dup2(log.fileno(), 1); os.dup2(log.fileno(), 2)
            main(args)
            code = 0
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            import atexit
            try: atexit._run_exitfuncs()   # what the process registered (servers it started stop), as at exit
            finally:
                sys.stdout.flush(); sys.stderr.flush()
                os._exit(code)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid: self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None: os.kill(self.pid, 9)

    def wait(self) -> int:
        if self.returncode is None: self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.returncode


def run_workers(jobs_in: list[tuple[Path, str]], nbs: Path, proc_dir: Path, work: Path, jobs: int,
                timeout: float, fork: bool = False) -> list[dict]:
    "One process per notebook (forked from this one when `fork`), `jobs` at a time, each killed after `timeout` s."
    pending, running, results = list(jobs_in), {}, []
    env = {**os.environ, "IN_TEST": "1", "PYTHONUNBUFFERED": "1"}
    while pending or running:
        while pending and len(running) < jobs:
            nb, mode = pending.pop(0)
            out = work / (nb.relative_to(nbs).as_posix().replace("/", "__") + ".json")
            log = open(work / (out.name + ".log"), "w")
            args = ["--worker", str(nb), "--nbs", str(nbs), "--worker-out", str(out), "--proc-dir", str(proc_dir),
                    "--mode", mode]
            if fork: proc = Forked(args, nb.parent, env, log)
            else: proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *args], cwd=nb.parent,
                                          env=env, stdout=log, stderr=subprocess.STDOUT)
            running[nb] = (proc, time.time(), out, log)
        time.sleep(0.1)
        for nb, (p, start, out, log) in list(running.items()):
            if p.poll() is None and time.time() - start < timeout: continue
            timed_out = p.poll() is None
            if timed_out:
                p.kill()
                p.wait()
            log.close()
            del running[nb]
            rel = PurePosixPath(nb.relative_to(nbs).as_posix())
            if p.returncode == 0 and out.exists(): res = json.loads(out.read_text())
            else:
                tail = Path(log.name).read_text().strip().splitlines()[-12:]
                why = f"timed out after {timeout:.0f} s" if timed_out else f"worker exit {p.returncode}"
                res = {"notebook": rel.as_posix(), "doc": doc_name(rel).as_posix(), "page": page_path(rel),
                       "title": rel.stem, "description": "", "mode": "failed", "modules": [], "cell_map": [],
                       "symbols": [], "errors": [f"{why}: " + " | ".join(tail)],
                       "seconds": round(time.time() - start, 1)}
            results.append(res)
            status = "; ".join(res["errors"]) if res["errors"] else {"run": "ok", "keep": "committed outputs",
                                                                      "plain": "not executed (--only)"}[res["mode"]]
            cpu = f"{res['cpu_seconds']:6.1f} s cpu" if "cpu_seconds" in res else " " * 10
            print(f"  {rel.as_posix():50s} {res['seconds']:6.1f} s {cpu}  {status}", flush=True)
    return results


def sidebar_cells(results: list[dict]) -> list[dict]:
    "The site's navigation, as hidden toctrees on the index page: Tutorials, API (top level), then other folders."
    groups: dict[str, list[str]] = {}
    for r in sorted(results, key=lambda r: r["notebook"]):
        if r["doc"] == "index": continue
        folder = PurePosixPath(r["notebook"]).parent.as_posix()
        groups.setdefault("" if folder == "." else folder, []).append(r["doc"])
    order = [g for g in ("tutorials", "") if g in groups] + sorted(g for g in groups if g not in ("tutorials", ""))
    cells = []
    for g in order:
        caption = "API" if g == "" else g.replace("_", " ").title()
        entries = "\n".join(groups[g])
        cells.append(_md_cell(f"```{{toctree}}\n:caption: {caption}\n:hidden:\n\n{entries}\n```"))
    return cells


_WARNING = re.compile(r"^(?P<file>[^:\n]*?\.ipynb):(?P<line>\d*):?\s*(?P<kind>WARNING|ERROR|CRITICAL):\s*(?P<msg>.*)$")


def name_warnings(text: str, proc_dir: Path, results: list[dict]) -> list[str]:
    "Sphinx's warnings with the notebook and cell they come from (myst-nb numbers lines cell * 10000 + line)."
    by_doc = {r["doc"]: r for r in results}
    named = []
    for line in text.splitlines():
        if not re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line): continue
        m = _WARNING.match(line.strip())
        if not m:
            named.append(f"sphinx: {line.strip()}")
            continue
        try: doc = Path(m["file"]).resolve().relative_to(proc_dir.resolve()).with_suffix("").as_posix()
        except ValueError: doc = m["file"]
        r = by_doc.get(doc)
        where = f"nbs/{r['notebook']}" if r else m["file"]
        if m["line"] and r:
            cell = int(m["line"]) // 10000 - 1
            src = r["cell_map"][cell] if cell < len(r["cell_map"]) else None
            where += f", cell {src}" if src is not None else " (the page's title or navigation)"
        named.append(f"{where}: {m['msg']}")
    return named


def source_pages(lib: Path, out: Path) -> int:
    "Highlighted pages of the generated modules with line anchors (`#L-12`), the target of entries' source links."
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer
    n = 0
    for py in sorted(lib.rglob("*.py")):
        rel = py.relative_to(lib.parent).as_posix()
        fmt = HtmlFormatter(linenos="table", lineanchors="L", anchorlinenos=True, full=True, title=rel,
                            style="default")
        target = out / SRC_DIR / (rel + ".html")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(highlight(py.read_text(), PythonLexer(), fmt))
        n += 1
    return n


def inputs_digest(root: Path = ROOT) -> str:
    "A hash of everything the site is built from, so a test can tell whether _site is current."
    h = hashlib.sha256()
    files = [*find_notebooks(root / "nbs"), *sorted((root / "twiga").rglob("*.py")), Path(__file__).resolve(),
             *sorted(p for p in CONF_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts),
             root / "settings.ini"]
    for f in files:
        if f.exists():
            h.update(f.relative_to(root).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def build(out: Path, proc_dir: Path, nbs: Path, keep: list[Path], only: list[str] | None, jobs: int,
          timeout: float, fork: bool = True) -> dict:
    "Build the site into `out`; return the manifest (pages, symbols, errors, seconds)."
    t0 = time.time()
    notebooks = find_notebooks(nbs)
    keep_set = {k.resolve() for k in keep}

    def mode(nb: Path) -> str:
        if nb.resolve() in keep_set: return "keep"
        if only and not any(nb.match(p) or nb.name == p for p in only) and nb.name != "index.ipynb": return "plain"
        return "run"
    timings_file = proc_dir / ".timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    shutil.rmtree(proc_dir, ignore_errors=True)
    proc_dir.mkdir(parents=True)
    todo = sorted(((nb, mode(nb)) for nb in notebooks),   # slowest first (last build's times): workers end together
                  key=lambda t: -timings.get(t[0].relative_to(nbs).as_posix(), 1e9 if t[1] == "run" else 0))
    print(f"==> executing and processing {len(notebooks)} notebooks, {jobs} at a time", flush=True)
    work = proc_dir / ".work"
    work.mkdir()
    if fork:
        lib = settings(nbs.parent).get("lib_name", "")
        fork = preload(to_preload([nb for nb, m in todo if m == "run"], lib))
    results = sorted(run_workers(todo, nbs, proc_dir, work, jobs, timeout, fork), key=lambda r: r["notebook"])
    shutil.rmtree(work)
    errors = [f"nbs/{r['notebook']}: {e}" for r in results for e in r["errors"]]
    dup = sorted({r["doc"] for r in results if sum(q["doc"] == r["doc"] for q in results) > 1})
    if dup: errors.append(f"several notebooks render to the same page(s): {dup}")
    index = proc_dir / "index.ipynb"
    if not index.exists():
        title = settings(nbs.parent).get("title", "Home")
        index.write_text(json.dumps({"cells": [_md_cell(f"# {title}\n")], "metadata": {}, "nbformat": 4,
                                     "nbformat_minor": 5}))
    idx = json.loads(index.read_text())
    idx["cells"] += sidebar_cells(results)
    index.write_text(json.dumps(idx, indent=1))
    for f in nbs.rglob("*"):   # images the notebooks link to, at the same place relative to their pages
        if f.suffix.lower() in ASSET_SUFFIXES and not any(p.startswith(("_", ".")) for p in f.relative_to(nbs).parts):
            (proc_dir / f.relative_to(nbs)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, proc_dir / f.relative_to(nbs))
    t1 = time.time()
    print(f"==> sphinx: rendering {len(results)} pages", flush=True)
    warn_file, html_dir = proc_dir / ".sphinx-warnings.txt", proc_dir / ".build" / "html"   # myst-nb writes beside it
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-n", "--keep-going", "-j", str(jobs),
           "-c", str(CONF_DIR), "-d", str(proc_dir / ".doctrees"), "-w", str(warn_file), str(proc_dir), str(html_dir)]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.exists(): shutil.rmtree(out)
    if html_dir.exists(): shutil.move(html_dir, out)
    warnings = warn_file.read_text() if warn_file.exists() else ""
    errors += name_warnings(warnings, proc_dir, results)
    if res.returncode != 0 and not warnings.strip():
        errors.append(f"sphinx-build exit {res.returncode}: {(res.stderr or res.stdout)[-2000:]}")
    if only:   # the pages --only did not execute lack their entries: links to them are not this build's news
        run = tuple(f"nbs/{r['notebook']}" for r in results if r["mode"] != "plain")
        errors = [e for e in errors if e.startswith(run) or not e.startswith("nbs/")]
    n_src = source_pages(nbs.parent / settings(nbs.parent).get("lib_path", "twiga"), out) if out.exists() else 0
    for r in results: r.pop("cell_map", None)
    manifest = {"inputs": inputs_digest(nbs.parent) if nbs.parent == ROOT else None, "pages": results,
                "symbols": sum(len(r["symbols"]) for r in results), "source_pages": n_src, "errors": errors,
                "seconds": round(time.time() - t0, 1), "sphinx_seconds": round(time.time() - t1, 1),
                "only": only or None, "kept": sorted(r["notebook"] for r in results if r["mode"] == "keep")}
    if out.exists(): (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    timings.update({r["notebook"]: r["seconds"] for r in results if r["mode"] == "run"})
    timings_file.write_text(json.dumps(timings, indent=1, sort_keys=True))
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "_site", help="site folder (default: _site)")
    ap.add_argument("--proc-dir", type=Path, default=None, help="processed notebooks (default: _proc)")
    ap.add_argument("--nbs", type=Path, default=ROOT / "nbs", help="notebook folder (default: nbs)")
    ap.add_argument("--keep-outputs", nargs="*", type=Path, default=[],
                    help="notebooks shown with their committed outputs, not executed (nbval checks them)")
    ap.add_argument("--only", nargs="*", default=None, help="execute only notebooks matching these names or globs")
    ap.add_argument("--jobs", type=int, default=2, help="notebooks executed at a time (default 2)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per notebook (default 900)")
    ap.add_argument("--no-fork", action="store_true",
                    help="start every notebook's process afresh (default on POSIX: fork it from this process, the "
                         "libraries the notebooks use imported once)")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="run", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    nbs = a.nbs.resolve()
    proc = (a.proc_dir or nbs.parent / "_proc").resolve()
    if a.worker:
        worker(a.worker.resolve(), nbs, proc, a.mode, a.worker_out)
        return 0
    out = a.out.resolve()
    m = build(out, proc, nbs, a.keep_outputs, a.only, a.jobs, a.timeout, fork=not a.no_fork)
    pages = len(m["pages"])
    print(f"==> {pages} pages, {m['symbols']} documented symbols, {m['source_pages']} source pages, "
          f"built in {m['seconds']:.0f} s (sphinx {m['sphinx_seconds']:.0f} s; notebooks "
          f"{sum(p.get('cpu_seconds', 0) for p in m['pages']):.0f} s cpu)")
    if out.exists():
        print(f"    site: {out}\n    open: python -m http.server -d {os.path.relpath(out)} 8000"
              f"  (then http://127.0.0.1:8000/)")
    if m["errors"]:
        print(f"==> {len(m['errors'])} problem(s):\n  " + "\n  ".join(m["errors"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
