"""Packaging for twiga. Dependencies live in `settings.ini` (nbdev 2 convention); this file only reads them.

Written without `pkg_resources` (gone from current setuptools), unlike the stock nbdev template.
"""
from configparser import ConfigParser
from pathlib import Path

import setuptools
from setuptools.command.build_py import build_py

cfg = ConfigParser(delimiters=["="])
cfg.read("settings.ini", encoding="utf-8")
cfg = cfg["DEFAULT"]


def _reqs(key):
    return cfg.get(key, "").split()


long_description = open("README.md", encoding="utf-8").read()

# Job notebooks ship inside the package as twiga/jobs/*, so `twiga retrain-job` runs from an installed wheel; their
# source stays in nbs/jobs/ with the other notebooks (an editable install reads them from there).
JOB_NOTEBOOKS = ["nbs/jobs/retrain.ipynb", "nbs/jobs/quickstart.ipynb"]


class BuildPyWithJobs(build_py):
    "build_py that also copies the job notebooks into the built package."
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False): return
        dest = Path(self.build_lib) / "twiga" / "jobs"
        self.mkpath(str(dest))
        for nb in JOB_NOTEBOOKS: self.copy_file(nb, str(dest / Path(nb).name))

setuptools.setup(
    name=cfg["lib_name"],
    version=cfg["version"],
    description=cfg["description"],
    long_description=long_description,
    long_description_content_type="text/markdown",
    author=cfg["author"],
    author_email=cfg["author_email"],
    license="Apache-2.0",
    keywords=cfg["keywords"].split(),
    url=cfg["git_url"],
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Developers",
        "Intended Audience :: Science/Research",
        "Programming Language :: Python :: 3.11",
        "Topic :: Scientific/Engineering",
    ],
    python_requires=f">={cfg['min_python']}",
    packages=setuptools.find_namespace_packages(include=["twiga", "twiga.*"], exclude=["*.__pycache__"]),
    include_package_data=True,
    package_data={"twiga.data": ["*"]},
    install_requires=_reqs("requirements"),
    extras_require={k: _reqs(f"{k}_requirements") for k in ("mlops", "scale", "dev")},
    entry_points={
        "console_scripts": cfg.get("console_scripts", "").split(),
        "nbdev": [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"],
    },
    cmdclass={"build_py": BuildPyWithJobs},
    zip_safe=False,
)
