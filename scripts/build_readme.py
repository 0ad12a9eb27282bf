"""Generate README.md from nbs/index.ipynb, without Quarto (which `nbdev_readme` needs).

    python scripts/build_readme.py            # execute nbs/index.ipynb, write README.md
    python scripts/build_readme.py --check    # exit 1 (with a diff) if README.md is not what the notebook gives

The notebook is executed the way `nbdev_test` runs it (in-process IPython shell via execnb, in nbs/), so the README
shows what the code prints today. Then, cell by cell: the title and `>` summary become the heading and a quote;
markdown cells are copied with their links to notebooks pointed at the notebooks in the repository
(`tutorials/01_getting_started.ipynb` -> `nbs/tutorials/01_getting_started.ipynb`); code cells become ```python
blocks (consecutive code cells without output in between share one block, so an example pastes in one go) with
their `#|` directive lines removed, followed by their outputs: printed text as ```text blocks, Markdown and
plain-text results as they are. Honoured directives: `hide` and `include: false` (the cell is left out),
`echo: false` (the code is left out), `output: false` (the outputs are left out). Standard error (log lines,
warnings) is never copied: it varies from run to run.
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
            parts.append(title_block(src) if first_md else repo_links(src.strip()))
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
    ap.add_argument("--notebook", type=Path, default=INDEX, help="the notebook (default nbs/index.ipynb)")
    ap.add_argument("--out", type=Path, default=README, help="the README (default README.md)")
    a = ap.parse_args(argv)
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
