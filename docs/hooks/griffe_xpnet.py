"""A griffe extension: xpnet's reStructuredText-flavoured docstrings as Markdown.

xpnet's docstrings are NumPy style with a few Sphinx habits: roles such as
``:func:`get_backend``` or ``:class:`~xpnet.errors.XpnetError```, ``::`` before a
literal block, and simple ``=====  =====`` tables. mkdocstrings renders Markdown, so
after the package is loaded this extension rewrites every docstring:

- a role becomes a cross-reference ``[`name`][identifier]`` when its target is
  rendered on the site (a public member of a module that a page of
  ``docs/reference/`` renders with ``::: module``), and plain code otherwise, so a
  role never makes a broken link; a role naming an object that does not exist at
  all is reported (``mkdocs build --strict`` then fails);
- ``::`` ending a line becomes ``:`` (or disappears when alone), so the indented
  block after it renders as code;
- a simple ``=====  =====`` table becomes a Markdown table, and a definition list (a
  term, its definition indented under it) Markdown's ``Term`` / ``:   definition``.

Configured in ``mkdocs.yml`` under the Python handler's ``extensions``.
"""

from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path

import griffe

_ROLE = re.compile(r":(?:py:)?(func|class|meth|attr|mod|data|exc|obj|const|ref):`([^`]+)`")
_BORDER = re.compile(r"^\s*=+(?:\s+=+)+\s*$")
_DIRECTIVE = re.compile(r"^(\s*)::\s*$")
_DOCS = Path(__file__).resolve().parents[1]
_log = logging.getLogger("mkdocs.plugins.griffe_xpnet")


#: Public modules that get no reference page, and why.
NOT_IN_REFERENCE = {
    "xpnet.app": "the application floor; its interface is the command line (cli.md)",
    "xpnet.training": "the Solver's private collaborators (see architecture.md)",
    "xpnet.classifiers": "rendered as its course modules fc_net and cnn",
}


def written_modules(docs: Path = _DOCS) -> list[str]:
    """The objects that pages of ``docs/reference/`` render (``::: path`` lines)."""
    found: list[str] = []
    for page in sorted((docs / "reference").glob("*.md")):
        for line in page.read_text(encoding="utf-8").splitlines():
            match = re.match(r"^:::\s+([\w.]+)\s*$", line)
            if match and match.group(1) not in found:
                found.append(match.group(1))
    return found


def _package_files(root: Path) -> list[Path]:
    """xpnet's .py files that git tracks (what a clean clone, and so CI, builds), or all of
    them outside a git checkout."""
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--", "xpnet"], cwd=root,
                                capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return sorted((root / "xpnet").rglob("*.py"))
    return sorted(root / p for p in listed if p.endswith(".py"))


def public_modules(root: Path = _DOCS.parent) -> list[str]:
    """Every module and package of xpnet whose dotted path has no part starting with _."""
    found = []
    for path in _package_files(root):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not any(part.startswith("_") for part in parts):
            found.append(".".join(parts))
    return found


def unwritten_modules(docs: Path = _DOCS) -> list[str]:
    """Public modules that no page of docs/reference/ covers: each gets a generated page."""
    written = written_modules(docs)
    missing: list[str] = []
    for module in public_modules(docs.parent):
        if module == "xpnet" or module in written or module in NOT_IN_REFERENCE:
            continue
        if any(module.startswith(m + ".") for m in (*written, *NOT_IN_REFERENCE, *missing)):
            continue
        missing.append(module)
    return missing


def rendered_modules(docs: Path = _DOCS) -> list[str]:
    """What the reference renders: the written pages' objects, then the generated pages'."""
    return written_modules(docs) + unwritten_modules(docs)


def _target(obj: griffe.Object | griffe.Alias) -> griffe.Object | None:
    try:
        return obj.final_target if obj.is_alias else obj
    except (griffe.AliasResolutionError, griffe.CyclicAliasError, KeyError):
        return None


def _lookup(pkg: griffe.Module, path: str) -> griffe.Object | None:
    if path == pkg.path:
        return pkg
    if not path.startswith(pkg.path + "."):
        return None
    try:
        found = pkg[path[len(pkg.path) + 1:]]
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    return _target(found)


def _documented(obj: griffe.Object) -> bool:
    return obj.is_module or bool(obj.docstring)


def site_identifiers(pkg: griffe.Module, modules: list[str]) -> dict[str, str]:
    """Canonical path of each object rendered on the site -> the identifier it has there."""
    candidates: dict[str, list[str]] = {}

    def add(path: str, obj: griffe.Object) -> None:
        candidates.setdefault(obj.path, [])
        if path not in candidates[obj.path]:
            candidates[obj.path].append(path)

    for name in modules:
        module = _lookup(pkg, name)
        if module is None:
            continue
        add(name, module)
        for member_name, member in module.members.items():
            if member_name.startswith("_") or not member.is_public:
                continue
            obj = _target(member)
            if obj is None or obj.is_module or not _documented(obj):
                continue
            add(f"{name}.{member_name}", obj)
            if obj.is_class:
                for sub_name, sub in obj.all_members.items():
                    sub_obj = _target(sub)
                    if sub_name.startswith("_") or sub_obj is None or not _documented(sub_obj):
                        continue
                    add(f"{name}.{member_name}.{sub_name}", sub_obj)

    def home_first(canonical: str, paths: list[str]) -> str:
        # the page of the object's own module (or of the package above it) wins over a
        # module that re-exports it: xpnet.errors.DataError, not xpnet.data_utils.DataError
        def score(path: str) -> int:
            parent = path.rsplit(".", 1)[0]
            return len(parent) if canonical.startswith(parent + ".") else -1
        return max(paths, key=score)

    return {canonical: home_first(canonical, paths) for canonical, paths in candidates.items()}


def _scopes(obj: griffe.Object) -> list[str]:
    scopes = []
    current: griffe.Object | None = obj
    while current is not None:
        scopes.append(current.path)
        current = current.parent
    return scopes


class RstToMarkdown(griffe.Extension):
    """Rewrites the docstrings of a loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: object) -> None:
        """Rewrite every docstring of ``pkg`` once it is loaded."""
        ids = site_identifiers(pkg, rendered_modules())
        seen: set[int] = set()

        def visit(obj: griffe.Object) -> None:
            if id(obj) in seen:
                return
            seen.add(id(obj))
            if obj.docstring is not None:
                obj.docstring.value = self.convert(obj, obj.docstring.value, pkg, ids)
            for member in obj.members.values():
                if not member.is_alias:
                    visit(member)

        visit(pkg)

    def convert(self, obj: griffe.Object, text: str, pkg: griffe.Module,
                ids: dict[str, str]) -> str:
        """One docstring, roles, literal blocks and tables rewritten."""

        def role(match: re.Match[str]) -> str:
            kind, body = match.group(1), match.group(2).strip()
            titled = re.match(r"^(.*?)\s*<([^>]+)>$", body)
            title, target = (titled.group(1), titled.group(2)) if titled else (None, body)
            short = target.startswith("~")
            target = target.lstrip("~").removesuffix("()")
            shown = title or (target.rsplit(".", 1)[-1] if short else target)
            if kind in ("func", "meth") and not title:
                shown += "()"
            if kind == "ref":
                return f"`{shown}`"
            resolved = None
            candidates = [f"{scope}.{target}" for scope in _scopes(obj)] + [target]
            for candidate in candidates:
                resolved = _lookup(pkg, candidate)
                if resolved is not None:
                    break
            if resolved is None:
                if target.split(".")[0] == pkg.path and obj.path in ids:
                    _log.warning("%s: the docstring names %s, which does not exist",
                                 obj.path, target)
                return f"`{shown}`"
            identifier = ids.get(resolved.path)
            return f"[`{shown}`][{identifier}]" if identifier else f"`{shown}`"

        lines = _ROLE.sub(role, text).splitlines()
        out: list[str] = []
        table: list[str] = []  # the lines of the simple table being read
        borders = 0
        for i, line in enumerate(lines):
            following = lines[i + 1] if i + 1 < len(lines) else ""
            if _BORDER.match(line) or table:
                table.append(line)
                borders += bool(_BORDER.match(line))
                if borders >= 2 and _BORDER.match(line) and not following.strip():
                    out += simple_table(table)
                    table, borders = [], 0
                continue
            if _DIRECTIVE.match(line):
                continue
            if line.rstrip().endswith("::") and not line.rstrip().endswith(":::"):
                line = line.rstrip()[:-1]
            out.append(line)
        out += table  # an unterminated table stays as it was
        return "\n".join(definition_lists(out))


_SECTION = re.compile(r"^(Parameters|Returns|Yields|Receives|Raises|Warns|Warnings|See Also|"
                      r"Notes|References|Examples|Attributes|Methods|Other Parameters)\s*$")


def definition_lists(lines: list[str]) -> list[str]:
    """reStructuredText definition lists (a term, then its definition indented under it)
    as Markdown's (``Term`` then ``:   definition``), outside code and NumPy sections."""
    out: list[str] = []
    fenced = False
    for i, line in enumerate(lines):
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and _SECTION.match(line) and re.match(r"^\s*-{3,}\s*$", following):
            return out + lines[i:]  # griffe parses the sections: leave them as they are
        previous = out[-1] if out else ""
        after_definition = previous.startswith((" ", ":   "))
        term = (not fenced and line.strip() and not line[0].isspace()
                and (not previous.strip() or after_definition)
                and not line.rstrip().endswith(":") and following.startswith("    ")
                and following.strip() and not following.lstrip().startswith((">>>", "```")))
        if term and previous.strip():
            out.append("")  # Markdown separates the entries of a definition list
        out.append(line)
        if term:
            lines[i + 1] = ":   " + following[4:]
    return out


def simple_table(lines: list[str]) -> list[str]:
    """A reStructuredText simple table as a Markdown table (a code block if it is not one).

    Columns are the runs of ``=`` in the first border; a row whose first column is blank
    continues the row above; a border after the first row marks that row as the header.
    """
    spans = [m.span() for m in re.finditer(r"=+", lines[0])]
    indent = spans[0][0]
    rows: list[list[str]] = []
    header: list[str] | None = None
    for line in lines[1:]:
        if _BORDER.match(line):
            if rows and header is None and line is not lines[-1]:
                header = rows.pop()
            continue
        if line[:indent].strip():
            return ["```text", *lines, "```"]
        if not line.strip():
            continue
        if rows and len(spans) > 1 and not line[:spans[1][0]].strip():
            # a continuation: its words belong to the columns they start under
            starts = [start for start, _ in spans]
            cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
            continue
        # a new row: columns are separated by two spaces or more (a first column that
        # runs past its border, as docstrings allow themselves, still splits right)
        cells = re.split(r"\s{2,}", line.strip(), maxsplit=len(spans) - 1)
        rows.append(cells + [""] * (len(spans) - len(cells)))
    header = header or [""] * len(spans)

    def row(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return ["", row(header), "|" + "---|" * len(spans), *map(row, rows), ""]
