"""Generate README.md from nbs/index.ipynb, without Quarto (which `nbdev_readme` needs).

    python scripts/build_readme.py            # execute nbs/index.ipynb, write README.md
    python scripts/build_readme.py --check    # exit 1 (with a diff) if README.md is not what the notebook gives
    python scripts/build_readme.py --quickstart   # run `twiga quickstart`, keep what it printed, then write README.md

The notebook is executed the way `nbdev_test` runs it (in-process IPython shell via execnb, in nbs/), so the README
shows what the code prints today. Then, cell by cell: the title and `>` summary become the heading and a quote;
markdown cells are copied with their links to notebooks pointed at the notebooks in the repository
(`tutorials/01_getting_started.ipynb` -> `nbs/tutorials/01_getting_started.ipynb`); code cells become ```python
blocks (consecutive code cells without output in between share one block, so an example pastes in one go) with
their `#|` directive lines removed, followed by their outputs: printed text as ```text blocks, Markdown and
plain-text results as they are. Honoured directives: `hide` and `include: false` (the cell is left out),
`echo: false` (the code is left out), `output: false` (the outputs are left out). Standard error (log lines,
warnings) is never copied: it varies from run to run.

The marker `<!-- quickstart-output -->` in a markdown cell becomes what `twiga quickstart` printed in a real run,
kept in nbs/_quickstart_output.txt (run ids and timings change each run, so `--check` compares against that file;
`--quickstart` runs the quickstart again and refreshes it).
"""
from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_docs import _ANSI, _directives, _text  # noqa: E402  (one notebook reader for the site and the README)

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
INDEX = NBS / "index.ipynb"
README = ROOT / "README.md"

QUICKSTART_MARKER = "<!-- quickstart-output -->"
QUICKSTART_OUTPUT = NBS / "_quickstart_output.txt"
HEADER = "<!-- Generated from nbs/index.ipynb by scripts/build_readme.py: edit the notebook, not this file. -->"


def directives(src: str) -> tuple[dict[str, str], str]:
    "The `#|` directives of a cell (values lower-cased; `hide` maps to '') and its source without them."
    d, body = _directives(src)
    return {k: v.lower() for k, v in d.items()}, body


def repo_links(md: str) -> str:
    "Relative links to notebooks (`x.ipynb`, `tutorials/x.ipynb#part`) pointed at `nbs/` in the repository."
    return re.sub(r"\]\((?![a-z]+:|/|#)([^)\s]+\.ipynb(?:#[^)\s]*)?)\)", r"](nbs/\1)", md)


def title_block(md: str) -> str:
    "The notebook's `# Title` + `> summary` cell as the README's heading."
    lines = md.strip().splitlines()
    out = [lines[0].strip(), ""]
    rest = "\n".join(lines[1:]).strip()
    return "\n".join(out + ([rest] if rest else []))


def render_outputs(outputs: list) -> list[str]:
    "Markdown blocks for a cell's outputs: stdout as text blocks, Markdown as is, plain-text results as text blocks."
    blocks = []
    for o in outputs:
        t = o.get("output_type")
        if t == "stream":
            if o.get("name") == "stdout" and _text(o.get("text")).strip():
                blocks.append("```text\n" + _ANSI.sub("", _text(o["text"])).rstrip() + "\n```")
        elif t == "error":
            raise RuntimeError(f"nbs/index.ipynb failed: {o.get('ename')}: {o.get('evalue')}")
        elif t in ("execute_result", "display_data"):
            data = o.get("data", {})
            if "text/markdown" in data: blocks.append(_text(data["text/markdown"]).strip())
            elif "text/plain" in data and not any(k.startswith(("image/", "application/")) for k in data):
                blocks.append("```text\n" + _ANSI.sub("", _text(data["text/plain"])).rstrip() + "\n```")
    return blocks


def quickstart_output(path: Path = QUICKSTART_OUTPUT) -> str:
    "What the last recorded `twiga quickstart` printed, as a text block."
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python scripts/build_readme.py --quickstart`")
    return "```text\n" + path.read_text().rstrip() + "\n```"


def record_quickstart(path: Path = QUICKSTART_OUTPUT) -> None:
    "Run `twiga quickstart` in a temporary folder and keep what it printed (the folder shown as `twiga-quickstart`)."
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        work = Path(d) / "twiga-quickstart"
        code = "import sys; from twiga.cli import main; sys.exit(main(sys.argv[1:]))"
        subprocess.run([sys.executable, "-c", code, "quickstart", "--workdir", str(work)], check=True, cwd=d,
                       env={**os.environ, "COLUMNS": "110"})
        path.write_text((work / "quickstart.txt").read_text().replace(str(work), "twiga-quickstart"))
    print(f"wrote {path}")


def render(cells: list) -> str:
    "README.md text of executed notebook cells."
    parts: list[str] = [HEADER]
    code: list[str] = []  # consecutive code sources waiting for their block

    def flush():
        if code: parts.append("```python\n" + "\n\n".join(code) + "\n```")
        code.clear()

    first_md = True
    for c in cells:
        src = _text(c.get("source"))
        if c.get("cell_type") == "markdown":
            flush()
            if not src.strip(): continue
            md = title_block(src) if first_md else repo_links(src.strip())
            if QUICKSTART_MARKER in md: md = md.replace(QUICKSTART_MARKER, quickstart_output())
            parts.append(md)
            first_md = False
        elif c.get("cell_type") == "code":
            d, body = directives(src)
            if "hide" in d or d.get("include") == "false": continue
            if body.strip() and d.get("echo") != "false": code.append(body)
            outs = [] if d.get("output") == "false" else render_outputs(c.get("outputs", []))
            if outs:
                flush()
                parts.extend(outs)
    flush()
    return "\n\n".join(parts).rstrip() + "\n"


def execute(nb_path: Path = INDEX) -> list:
    "The notebook's cells after running them as nbdev_test does (in its folder, `#| eval: false` cells skipped)."
    from execnb.nbio import read_nb
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    nb = read_nb(nb_path)

    def skip(cell):
        return cell.cell_type != "code" or directives(cell.source)[0].get("eval") == "false"

    with working_directory(nb_path.parent):
        shell = CaptureShell(nb_path)
        shell.run_all(nb, exc_stop=True, preproc=skip)
    return [dict(c) for c in nb.cells]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with README.md instead of writing it")
    ap.add_argument("--quickstart", action="store_true", help="run `twiga quickstart` first and record its output")
    ap.add_argument("--notebook", type=Path, default=INDEX, help="the notebook (default nbs/index.ipynb)")
    ap.add_argument("--out", type=Path, default=README, help="the README (default README.md)")
    a = ap.parse_args(argv)
    if a.quickstart: record_quickstart()
    os.environ.setdefault("IN_TEST", "1")
    text = render(execute(a.notebook.resolve()))
    if a.check:
        have = a.out.read_text() if a.out.exists() else ""
        if have == text:
            print(f"{a.out.name} is in sync with {a.notebook.name}")
            return 0
        sys.stdout.writelines(difflib.unified_diff(have.splitlines(True), text.splitlines(True), str(a.out),
                                                   "generated"))
        print(f"\n{a.out.name} is out of date: run `python scripts/build_readme.py` and commit it.", file=sys.stderr)
        return 1
    a.out.write_text(text)
    print(f"wrote {a.out} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
