"""Every document the repository names is in the repository.

Scanned: every text file git knows (tracked, or new and not ignored); notebooks by their cells'
sources and text outputs. Two rules:

(a) a path ending in `.md` or `.ipynb`, and every relative link `[text](target)` of a Markdown
    file or notebook, must name a file (or folder) of the repository. A path with a `/` is looked
    up relative to the file that names it, then relative to the repository root; a bare name such
    as `results.md` must be the name of some file of the repository. Not checked: URLs (a document
    of another project is cited by its URL), placeholders (`PATH.md`, `NAME.md`), and in code a
    bare name that is a whole string literal (`tmp_path / "quick.md"`: a file the code writes).
(b) the names of background documents that were never part of the repository must not appear at
    all (they are assembled below from pieces, so that this file does not name them).
"""

from __future__ import annotations

import json
import posixpath
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = tuple(a + b for a, b in (("DESIGN", ".md"), ("PAPER", "-FACTS"), ("PERF", "-NOTES"),
                                     ("STYLE", ".md"), ("../", "shared")))

URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s)\]>\"'`]+")
DOC_PATH = re.compile(r"[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.(?:md|ipynb)(?![A-Za-z0-9_])")
PLACEHOLDER = re.compile(r"(PATH|NAME|RUN|FILE|OUT|DIR)\.(md|ipynb)")
MD_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def repo_files(root: Path = ROOT) -> list[str]:
    """Paths (relative, '/'-separated) of tracked files and new files git does not ignore."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=root, check=True, capture_output=True).stdout.decode()
    return sorted({p for p in out.split("\0") if p and (root / p).is_file()})


def read_text(path: Path) -> str | None:
    """The file's text (a notebook: its cells' sources and text outputs), or None for binary files."""
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if path.suffix == ".ipynb":
        nb = json.loads(text)
        parts = []
        for cell in nb.get("cells", []):
            parts.append("".join(cell.get("source", [])))
            for out in cell.get("outputs", []):
                parts.append("".join(out.get("text", [])))
                parts.append("".join(out.get("data", {}).get("text/plain", [])))
        text = "\n".join(parts)
    return text


def dangling_references(rel_path: str, text: str, files) -> list[str]:
    """'file:line: message' for each reference in `text` (the content of `rel_path`) to a missing document."""
    files = set(files)
    basenames = {posixpath.basename(f) for f in files}
    dirs = {posixpath.dirname(f) for f in files}
    dirs |= {d for f in list(dirs) for d in _parents(f)}
    here = posixpath.dirname(rel_path)
    markdown = rel_path.endswith((".md", ".ipynb"))

    def exists(target: str, allow_root: bool) -> bool:
        target = target.split("#")[0].split("?")[0]
        if not target:
            return True                                               # an anchor in the same file
        candidates = [posixpath.normpath(posixpath.join(here, target))]
        if allow_root:
            candidates.append(posixpath.normpath(target.lstrip("/")))
        return any(c in files or c in dirs for c in candidates)

    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for name in FORBIDDEN:
            if name.lower() in line.lower():
                out.append(f"{rel_path}:{lineno}: names {name!r}, a document that is not in the repository")
        line = URL.sub(" ", line)
        for m in MD_LINK.finditer(line) if markdown else ():
            target = m.group(1)
            if target.startswith(("#", "mailto:")) or ":" in target.split("/")[0]:
                continue
            if not exists(target, allow_root=False):
                out.append(f"{rel_path}:{lineno}: link to {target!r}, which is not in the repository")
        for m in DOC_PATH.finditer(line):
            path = m.group(0)
            if PLACEHOLDER.fullmatch(path) or any(name.lower() in path.lower() for name in FORBIDDEN):
                continue                                              # the forbidden ones: reported above
            if "/" not in path.strip("./"):
                before, after = line[m.start() - 1: m.start()], line[m.end(): m.end() + 1]
                quoted = before in ("'", '"') and after == before
                ok = posixpath.basename(path) in basenames or (quoted and not markdown)
            else:
                ok = exists(path, allow_root=True)
            if not ok:
                out.append(f"{rel_path}:{lineno}: names {path!r}, which is not in the repository")
    return out


def _parents(d: str):
    while d:
        d = posixpath.dirname(d)
        yield d


def test_no_dangling_document_references():
    files = repo_files()
    problems = []
    for rel in files:
        text = read_text(ROOT / rel)
        if text is not None:
            problems += dangling_references(rel, text, files)
    assert not problems, "references to documents that are not in the repository:\n" + "\n".join(problems)


def test_the_scan_sees_the_documents():
    files = repo_files()
    assert "README.md" in files and "docs/derivation.md" in files and "tests/test_repo_docs.py" in files
    assert read_text(ROOT / "README.md") is not None


# ---------------------------------------------------------------------------------------------
# Negative twins: a planted reference is reported (the planted names are assembled from pieces,
# and the existing ones are real files, so that the scan of this file passes)

FILES = ["README.md", "docs/derivation.md", "docs/envs.md", "docs/results/popgym/results.md",
         "notebooks/01_rtrl_for_the_elstm.ipynb", "rtrl_ref/cell.py"]
MD = "." + "md"
POPGYM = "results/popgym/results" + MD


def test_a_dangling_path_is_reported():
    missing = "docs/no_such_file" + MD
    (line,) = dangling_references("rtrl_ref/cell.py", f'"""Math in {missing}, Eq. 3."""\n', FILES)
    assert line.startswith("rtrl_ref/cell.py:1:") and missing in line


def test_a_dangling_markdown_link_is_reported():
    text = "ok [d](derivation.md) and [r](" + POPGYM + ")\n\nbad [x](results/" + "atari/)\n"
    (line,) = dangling_references("docs/envs.md", text, FILES)
    assert line.startswith("docs/envs.md:3:") and "results/atari/" in line
    lines = dangling_references("README.md", "[nb](notebooks/02_x" + ".ipynb)\n", FILES)
    assert lines and all("02_x.ipynb" in line for line in lines)


def test_a_dangling_basename_is_reported():
    assert dangling_references("README.md", "see results.md and derivation.md\n", FILES) == []
    (line,) = dangling_references("README.md", "see nothing_here" + MD + "\n", FILES)
    assert "nothing_here" in line
    (line,) = dangling_references("rtrl_ref/cell.py", "# see nothing_here" + MD + "\n", FILES)
    assert "nothing_here" in line
    assert dangling_references("rtrl_ref/cell.py", "out = tmp / 'nothing_here" + MD + "'\n", FILES) == []


def test_resolution_relative_to_the_file_and_to_the_root():
    text = "docs/derivation.md, ../README.md, " + POPGYM + ", https://x.org/a/b.md, PATH.md\n"
    assert dangling_references("docs/envs.md", text, FILES) == []
    (line,) = dangling_references("rtrl_ref/cell.py", text, FILES)  # results/... is not under rtrl_ref/
    assert POPGYM in line


def test_background_names_are_reported():
    for name in FORBIDDEN:
        lines = dangling_references("envs/base.py", f"# zeroed before obs[b] ({name}, section 2)\n", FILES)
        assert any(repr(name) in line for line in lines), name
