"""MkDocs hooks of xpnet's site: generated pages and the checks ``--strict`` enforces.

Generated at build time, so they cannot drift from the code:

- the tutorials: ``notebooks/*.ipynb`` (and ``notebooks/README.md`` as their index)
  become pages under ``notebooks/``, which mkdocs-jupyter executes and renders;
- ``<!-- xpnet:cli -->``: the command-line reference, from ``xpnet.app.cli.build_parser``;
- ``<!-- xpnet:presets -->``: the presets of ``xpnet train``, from ``xpnet.app.presets``;
- ``<!-- xpnet:toplevel -->``: the names ``xpnet`` exports, linked to their pages;
- ``<!-- xpnet:modules -->``: the reference's modules with their summaries;
- ``<!-- xpnet:benchmarks -->``: tables and plots of the benchmark JSON files in
  ``benchmarks/results/``, or the folder ``$XPNET_DOCS_BENCHMARKS`` names (see
  ``benchmark_markdown``).

Every public module of the package (that git tracks) is in the reference: on its page in
``docs/reference/`` (which the nav lists), or else on a page generated here that the
reference's index links to, unless ``NOT_IN_REFERENCE`` (in griffe_xpnet.py) says why not.

Checked (each problem is a warning, so ``mkdocs build --strict`` fails): every public
function, class and method of a module the reference renders has a docstring (an
override may inherit its base class's).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import griffe
from mkdocs.plugins import event_priority, get_plugin_logger
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
NOTEBOOKS = ROOT / "notebooks"
#: where the benchmark JSON files are (``XPNET_DOCS_BENCHMARKS`` renders another folder)
RESULTS = Path(os.environ.get("XPNET_DOCS_BENCHMARKS", ROOT / "benchmarks" / "results"))

log = get_plugin_logger("xpnet_docs")


def _griffe_ext() -> Any:
    """docs/hooks/griffe_xpnet.py, loaded by path (hooks are not a package)."""
    name = "griffe_xpnet"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, DOCS / "hooks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_PACKAGE: griffe.Module | None = None


def _package() -> griffe.Module:
    global _PACKAGE
    if _PACKAGE is None:
        _PACKAGE = griffe.load("xpnet", search_paths=[str(ROOT)], docstring_parser="numpy",
                               resolve_aliases=True, resolve_external=False,
                               extensions=griffe.load_extensions(_griffe_ext().RstToMarkdown))
    return _PACKAGE


def _target(obj: Any) -> Any:
    try:
        return obj.final_target if obj.is_alias else obj
    except (griffe.AliasResolutionError, griffe.CyclicAliasError, KeyError):
        return None


def _summary(obj: Any) -> str:
    if obj is None or not obj.docstring:
        return ""
    first = obj.docstring.value.strip().split("\n\n")[0]
    return " ".join(first.split())


# ---------------------------------------------------------------------------
# Events


def on_config(config: Any) -> Any:
    """Put the repository first on sys.path so that the generators import this xpnet."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return config


@event_priority(100)  # before mkdocs-jupyter turns .ipynb files into pages
def on_files(files: Files, config: Any) -> Files:
    """Add notebooks/ (its README as the index, the notebooks as tutorials) to the site.

    They keep their repository paths (``notebooks/README.md``, ``notebooks/*.ipynb``), so
    the README's links to the notebooks work on the site as they do on GitHub.
    """
    sources = [NOTEBOOKS / "README.md", *sorted(NOTEBOOKS.glob("*.ipynb"))]
    for source in sources:
        if source.exists():
            files.append(File(source.relative_to(ROOT).as_posix(), src_dir=str(ROOT),
                              dest_dir=config["site_dir"],
                              use_directory_urls=config["use_directory_urls"]))
    for module in _griffe_ext().unwritten_modules():
        log.info(f"{module} has no page in docs/reference/: generated {_generated_page(module)}"
                 " (the reference index links it; a page of its own can place it in the nav)")
        files.append(File.generated(config, f"reference/{_generated_page(module)}",
                                    content=f"# {module}\n\n::: {module}\n"))
    return files


def _generated_page(module: str) -> str:
    return f"{module.removeprefix('xpnet.')}.md"


_MARKERS = {
    "<!-- xpnet:cli -->": lambda: cli_markdown(),
    "<!-- xpnet:presets -->": lambda: presets_markdown(),
    "<!-- xpnet:toplevel -->": lambda: toplevel_markdown(),
    "<!-- xpnet:modules -->": lambda: modules_markdown(),
    "<!-- xpnet:benchmarks -->": lambda: benchmark_markdown(sorted(RESULTS.glob("*.json"))),
}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Replace the markers with generated Markdown."""
    for marker, make in _MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown


def on_post_build(config: Any) -> None:
    """Warn about missing docstrings."""
    for problem in missing_docstrings():
        log.warning(problem)


# ---------------------------------------------------------------------------
# Checks


def _inherits_docstring(cls: Any, name: str) -> bool:
    try:
        bases = cls.mro()
    except Exception:  # a base outside the package: nothing to inherit from here
        return False
    return any(name in base.members and base.members[name].docstring for base in bases)


def missing_docstrings() -> list[str]:
    """Public functions, classes and methods of the rendered modules without a docstring."""
    pkg = _package()
    ext = _griffe_ext()
    problems: set[str] = set()
    for module_path in ext.rendered_modules():
        module = ext._lookup(pkg, module_path)
        if module is None:
            problems.add(f"docs/reference renders {module_path}, which does not exist")
            continue
        for name, member in module.members.items():
            if name.startswith("_") or not member.is_public:
                continue
            obj = _target(member)
            if obj is None or obj.is_module or obj.is_attribute:
                continue
            where = f"{obj.relative_filepath}:{obj.lineno}"
            if not obj.docstring:
                problems.add(f"missing docstring: {module_path}.{name} ({where})")
            if not obj.is_class:
                continue
            for sub_name, sub in obj.all_members.items():
                sub_obj = _target(sub)
                if sub_name.startswith("_") or sub_obj is None or not sub_obj.is_function:
                    continue
                if sub_obj.docstring or _inherits_docstring(obj, sub_name):
                    continue
                problems.add(f"missing docstring: {module_path}.{name}.{sub_name} "
                             f"({sub_obj.relative_filepath}:{sub_obj.lineno})")
    return sorted(problems)


# ---------------------------------------------------------------------------
# Generated Markdown


def _cell(text: str) -> str:
    """Text for a Markdown table cell."""
    text = " ".join(str(text).split())
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, Any]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            out += [(name, helps.get(name) or "", sub) for name, sub in action.choices.items()]
    return out


def _options_table(parser: argparse.ArgumentParser) -> list[str]:
    formatter = parser._get_formatter()
    lines = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions
                   if not isinstance(a, argparse._SubParsersAction) and a.help != argparse.SUPPRESS]
        if not actions:
            continue
        title = group.title or "options"
        lines += ["", f"**{_cell(title)}**" + (f": {_cell(group.description)}"
                                                if group.description else ""), ""]
        lines += ["| option | value | meaning |", "|---|---|---|"]
        for action in actions:
            flags = ", ".join(_code(f) for f in action.option_strings) or _code(action.dest)
            if action.choices and action.nargs != 0 and not action.metavar:
                metavar = " \\| ".join(_code(str(c)) for c in action.choices)
            elif action.nargs != 0:
                default = (formatter._get_default_metavar_for_optional(action)
                           if action.option_strings
                           else formatter._get_default_metavar_for_positional(action))
                metavar = _code(formatter._format_args(action, default))
            else:
                metavar = ""
            help_text = formatter._expand_help(action) if action.help else ""
            lines.append(f"| {flags} | {metavar} | {_cell(help_text)} |")
    return lines


def _command_markdown(parser: argparse.ArgumentParser, name: str, level: int) -> list[str]:
    lines = [f"{'#' * level} `{name}`", ""]
    if parser.description:
        lines += [_cell(parser.description), ""]
    lines += ["```text", parser.format_usage().strip(), "```"]
    lines += _options_table(parser)
    for sub_name, _help, sub in _subcommands(parser):
        lines += [""] + _command_markdown(sub, f"{name} {sub_name}", level + 1)
    return lines


def cli_markdown() -> str:
    """The reference of the ``xpnet`` command, from its argument parser."""
    from xpnet.app.cli import build_parser

    parser = build_parser()
    lines = ["| command | what it does |", "|---|---|"]
    for name, help_text, _ in _subcommands(parser):
        anchor = f"xpnet-{name}".replace(" ", "-")
        lines.append(f"| [`xpnet {name}`](#{anchor}) | {_cell(help_text)} |")
    lines += [""]
    lines += ["## `xpnet`", "", _cell(parser.description or ""), "", "```text",
              parser.format_usage().strip(), "```"]
    lines += _options_table(parser)
    for name, _help, sub in _subcommands(parser):
        lines += [""] + _command_markdown(sub, f"xpnet {name}", 2)
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(map(str, value))
    return str(value)


def presets_markdown() -> str:
    """A table of the presets of ``xpnet train``: one column per preset."""
    from xpnet.app.presets import PRESETS

    names = list(PRESETS)
    keys = list(dict.fromkeys(k for options in PRESETS.values() for k in options))
    lines = ["| option | " + " | ".join(f"`{n}`" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for key in keys:
        cells = [_cell(_value(PRESETS[n][key])) if key in PRESETS[n] else "" for n in names]
        lines.append(f"| `{key}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _site_ids() -> dict[str, str]:
    ext = _griffe_ext()
    return ext.site_identifiers(_package(), ext.rendered_modules())


def toplevel_markdown() -> str:
    """The names ``xpnet`` exports, each linked to where the reference documents it."""
    pkg = _package()
    ids = _site_ids()
    lines = ["| name | documented in | summary |", "|---|---|---|"]
    for name in pkg.exports or []:
        member = pkg.members.get(str(name))
        obj = _target(member) if member is not None else None
        if obj is None:
            continue
        if name == "__version__":
            lines.append("| `xpnet.__version__` | | the installed version, a string |")
            continue
        identifier = ids.get(obj.path)
        if identifier is None:
            log.warning(f"xpnet.{name} is exported but documented nowhere: render it "
                        f"in docs/reference/xpnet.md (::: xpnet.{name}) or a module page")
            continue
        home = identifier.rsplit(".", 1)[0]
        page = "xpnet.md" if home == "xpnet" else _page_of(home)
        where = f"[`{home}`]({page})" if page else f"`{home}`"
        lines.append(f"| [`xpnet.{name}`][{identifier}] | {where} | {_cell(_summary(obj))} |")
    return "\n".join(lines) + "\n"


def _page_of(module: str) -> str | None:
    """The reference page (file name) that renders ``module``."""
    for page in sorted((DOCS / "reference").glob("*.md")):
        if f"::: {module}\n" in page.read_text(encoding="utf-8"):
            return page.name
    if module in _griffe_ext().unwritten_modules():
        return _generated_page(module)
    return None


def modules_markdown() -> str:
    """The reference's modules, each linked to its page, with its summary line."""
    pkg = _package()
    ext = _griffe_ext()
    lines = ["| module | summary |", "|---|---|"]
    for module in ext.rendered_modules():
        obj = ext._lookup(pkg, module)
        if obj is None or not obj.is_module:
            continue
        lines.append(f"| [`{module}`]({_page_of(module)}) | {_cell(_summary(obj))} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Benchmarks


def _machine_line(info: dict[str, Any]) -> str:
    parts = [info.get("cpu") or info.get("machine") or info.get("platform") or "unknown CPU"]
    if info.get("cpus"):
        parts.append(f"{info['cpus']} CPUs")
    for lib in ("numpy", "torch"):
        if info.get(lib):
            parts.append(f"{lib} {info[lib]}")
    if info.get("load_average_at_start"):
        load = ", ".join(f"{x:.2f}" for x in info["load_average_at_start"])
        parts.append(f"load average at the start {load}")
    return "; ".join(parts)


def _command(script: str, args: dict[str, Any]) -> str:
    words = ["python", f"benchmarks/{script}"]
    for key, value in args.items():
        if value is None or value is False or key == "json":
            continue
        flag = "--" + key.replace("_", "-")
        words += [flag] if value is True else [flag, str(value)]
    return " ".join(words)


def _svg_bars(title: str, labels: list[str], values: list[float], unit: str) -> str:
    """A horizontal bar chart as inline SVG (matplotlib, no external assets)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 0.35 * len(labels) + 1.2))
    ax = fig.add_subplot()
    ax.barh(range(len(labels)), values, color="#3f51b5")
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(unit)
    ax.set_title(title)
    fig.tight_layout()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    return svg[svg.index("<svg"):]


def _timing_section(name: str, data: dict[str, Any], script: str) -> list[str]:
    metrics = [k.removeprefix("summary_") for k in data if k.startswith("summary_")]
    summaries = {m: data[f"summary_{m}"] for m in metrics}
    if "summary" in data:  # bench_conv.py: one summary of fwd_bwd_ms
        summaries = {"fwd_bwd_ms": data["summary"]}
    lines = [f"### `{name}`", "", f"Command: `{_command(script, data.get('args', {}))}`  ",
             f"Machine: {_cell(_machine_line(data.get('machine', {})))}", ""]
    for metric, summary in summaries.items():
        unit = {"epoch_s": "s per epoch", "step_ms": "ms per step",
                "fwd_bwd_ms": "ms, forward + backward"}.get(metric, metric)
        baselines = sorted({b for s in summary.values() for b in s.get("ratios", {})})
        lines += [f"**{unit}**", "",
                  "| workload:implementation | best | median | peak RSS (MB) | "
                  + " | ".join(f"vs {b} (best / median)" for b in baselines) + " |",
                  "|---|---|---|---|" + "---|" * len(baselines)]
        labels, values = [], []
        for label, s in summary.items():
            if "error" in s:
                lines.append(f"| `{label}` | error: {_cell(s['error'])} | | |"
                             + " |" * len(baselines))
                continue
            ratios = [s.get("ratios", {}).get(b) for b in baselines]
            cells = [f"{r['best_to_best']:.2f} / {r['median_to_median']:.2f}" if r else ""
                     for r in ratios]
            lines.append(f"| `{label}` | {s[metric]['min']:.4g} | {s[metric]['median']:.4g} | "
                         f"{s.get('peak_rss_mb', 0):.0f} | " + " | ".join(cells) + " |")
            labels.append(label)
            values.append(s[metric]["min"])
        if labels:
            lines += ["", '<div class="xpnet-figure" markdown="0">',
                      _svg_bars(f"{name}: {unit} (best round)", labels, values, unit),
                      "</div>"]
        lines.append("")
    return lines


def _accuracy_section(name: str, data: dict[str, Any]) -> list[str]:
    lines = [f"### `{name}`", "", f"Machine: {_cell(_machine_line(data.get('machine', {})))}",
             "", "| preset | best val | test | minutes | s per epoch | epochs | command |",
             "|---|---|---|---|---|---|---|"]
    labels, values = [], []
    for preset, r in data.get("results", {}).items():
        words = list(r.get("command", []))
        if words and Path(words[0]).name.startswith("python"):
            words[0] = "python"  # the interpreter's path on the machine that ran it
        command = " ".join(words)
        if r.get("returncode"):
            lines.append(f"| `{preset}` | failed (exit {r['returncode']}) | | | | | "
                         f"`{command}` |")
            continue
        lines.append(f"| `{preset}` | {r['best_val_acc']:.1%} | {r['test_acc']:.1%} | "
                     f"{r['minutes']:.1f} | {r['seconds_per_epoch']} | {r['epochs']} | "
                     f"`{command}` |")
        labels.append(preset)
        values.append(100 * r["test_acc"])
    if labels:
        lines += ["", '<div class="xpnet-figure" markdown="0">',
                  _svg_bars(f"{name}: test accuracy", labels, values, "test accuracy (%)"),
                  "</div>"]
    return lines + [""]


def benchmark_markdown(paths: list[Path]) -> str:
    """Tables (and bar charts) of benchmark JSON files, each with its command and machine.

    Understood: the ``--json`` output of ``benchmarks/bench_train.py`` (``summary_epoch_s``,
    ``summary_step_ms``), of ``benchmarks/bench_conv.py`` (``summary``) and the output of
    ``benchmarks/accuracy.py`` (``results`` per preset). A file of another shape is
    reported as a warning.
    """
    if not paths:
        return ("!!! note \"No benchmark JSON files are committed yet\"\n"
                "    The tables on this page are the measurements quoted from the runs "
                "described with them. To have the site render a run of your own, write "
                "its JSON into `benchmarks/results/` (for example "
                "`python benchmarks/bench_train.py --workloads fc-a --json "
                "benchmarks/results/fc.json`, `python benchmarks/bench_conv.py --json "
                "benchmarks/results/conv.json`, `python benchmarks/accuracy.py --data-dir DIR "
                "--out benchmarks/results/accuracy.json`) and build the site again: each file "
                "becomes a table and a chart here, with its command and machine.\n")
    lines: list[str] = []
    for path in paths:
        data = json.loads(path.read_text(encoding="utf-8"))
        name = path.name
        if any(k.startswith("summary_") for k in data):
            lines += _timing_section(name, data, "bench_train.py")
        elif "summary" in data:
            lines += _timing_section(name, data, "bench_conv.py")
        elif isinstance(data.get("results"), dict) and all(
                "preset" in r for r in data["results"].values()):
            lines += _accuracy_section(name, data)
        else:
            log.warning(f"{path.relative_to(ROOT)}: not a benchmark result this page knows")
    return "\n".join(lines) + "\n"

