"""Sphinx configuration of twiga's docs site.

scripts/build_docs.py executes each notebook once, processes it with nbdev's own processors (what `nbdev_proc_nbs`
does for Quarto) and writes the result to _proc/; Sphinx renders _proc/ with myst-nb (outputs as stored, nothing
re-executed) and the PyData book theme. Run it through `./dev docs`, not by hand.
"""
import configparser
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))   # docs_ext: the slug function and the page hooks

_ini = configparser.ConfigParser()
_ini.read(HERE.parent / "settings.ini")
_s = _ini["DEFAULT"]

project = _s["title"]
author = _s["author"]
copyright = _s["copyright"]
version = release = _s["version"]

extensions = ["myst_nb", "sphinx_copybutton", "docs_ext"]
exclude_patterns = [".doctrees", "**/.ipynb_checkpoints", ".*"]
suppress_warnings = ["myst.header"]   # show_doc entries are level-3 headings, as in nbdev's Quarto site

# myst-nb renders the outputs build_docs.py stored; it never executes.
nb_execution_mode = "off"
nb_output_stderr = "show"
nb_merge_streams = True
myst_enable_extensions = ["colon_fence", "attrs_inline", "attrs_block", "dollarmath"]
# Every heading gets an HTML id as nbdev's Quarto site names it (`twigaforecaster.predict_interval`), so the links
# nbdev writes (and _modidx.py records) resolve here too; `[x](page.ipynb#id)` links are checked by Sphinx.
myst_heading_anchors = 6
myst_heading_slug_func = "docs_ext.slug"

html_math_renderer = "mathml"   # docs_ext: MathML, drawn by the browser offline (MathJax would need a CDN)
html_theme = "sphinx_book_theme"
html_title = project
html_static_path = ["_static"]
html_css_files = ["twiga.css"]
html_favicon = "_static/twiga.svg"
html_context = {"default_mode": "light"}
html_copy_source = False
html_show_sourcelink = False
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "navigation_with_keys": False,
    "navbar_persistent": [],   # search sits in the sidebar, as on nbdev's sites; not a second time in a header
}

copybutton_exclude = ".linenos, .gp, .go"
