"""The README's and docs/'s code is run, so that it cannot drift from the code it describes.

* Every ```python block of README.md and docs/*.md runs: a page's blocks in order, in one fresh namespace,
  in a fresh temporary working directory that has the repository's ``configs/``, with the test datasets
  root as ``DETECTRON2_DATASETS``. A block whose first line is a file name comment (``# my_loss.py``,
  ``# my_config.yaml``) is a file the reader writes: it is written into that directory (a .py file is
  compiled) before the page's other blocks run. A block right after ``<!-- not run: REASON -->`` is
  skipped and counted; at most ``MAX_NOT_RUN`` in all.
* Every ``python tools/...`` and ``python benchmarks/...`` command line of a ```bash block is parsed by
  that script's own argument parser (nothing else of it runs); every ``make`` target and variable in
  them is the Makefile's.
* Every ``configs/...`` path, every ``--flag`` and every relative link named in the pages exists.

One subprocess does the running and the parsing (one import of torch and detectron2): this file, run as
a script with a JSON spec.
"""
import glob
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md")))
DOC_PAGES = ["docs/evaluation.md", "docs/measurements.md", "docs/methods.md", "docs/multi_gpu.md",
             "docs/own_data.md", "docs/own_loss.md", "docs/python_configs.md", "docs/troubleshooting.md"]
MAX_NOT_RUN = 4  # blocks that need a trained model, a GPU or a long run
README_MAX_LINES = 160
NOT_RUN = re.compile(r"<!--\s*not run:\s*(.+?)\s*-->")
FILE_LABEL = re.compile(r"#\s*([\w.\-/]+\.(?:py|yaml))\s*$")

# Configs the pages name that another branch adds. While one is missing, a stand-in with the same keys is
# written in the pages' working directories, so that the pages' code runs; remove an entry once its file is in
# the tree (the test then uses the real file).
# --flags the pages name that belong to other programs than the repository's scripts
OTHER_FLAGS = {"--dist": "pytest-xdist", "--help": "every script"}


# ------------------------------------------------------------------ reading the pages
def read(page):
    with open(os.path.join(REPO, page)) as f:
        return f.read()


def code_blocks(page):
    """[(language, code, first line number, not-run reason or None)] of a page's fenced blocks."""
    lines = read(page).splitlines()
    out, i = [], 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start, j = i, i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        reason = NOT_RUN.search(lines[k]) if k >= 0 else None
        out.append((m.group(1), "\n".join(lines[start + 1:j]) + "\n", start + 2, reason.group(1) if reason else None))
        i = j + 1
    return out


def file_label(code):
    first = code.lstrip("\n").splitlines()[0] if code.strip() else ""
    m = FILE_LABEL.match(first)
    return m.group(1) if m else None


def command_lines(code):
    """The shell command lines of a bash block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    out = []
    for line in joined.splitlines():
        tokens = shlex.split(line, comments=True)
        while tokens and re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[0]):  # VAR=value before the command
            tokens = tokens[1:]
        if tokens:
            out.append(tokens)
    return out


def script_commands():
    """[(page, line, script, argv)] of every `python tools/...` / `python benchmarks/...` in bash blocks."""
    out = []
    for page in PAGES:
        for lang, code, line, _ in code_blocks(page):
            if lang not in ("bash", "sh", "shell"):
                continue
            for tokens in command_lines(code):
                if tokens[0] in ("python", "python3", ".venv/bin/python") and len(tokens) > 1 and \
                        tokens[1].startswith(("tools/", "benchmarks/")):
                    out.append((page, line, tokens[1], tokens[2:]))
    return out


def make_commands():
    out = []
    for page in PAGES:
        for lang, code, line, _ in code_blocks(page):
            if lang in ("bash", "sh", "shell"):
                out += [(page, line, t[1:]) for t in command_lines(code) if t[0] == "make"]
    return out


def main_scripts():
    """The command-line scripts of tools/ and benchmarks/ (their --help lists the flags the pages may name)."""
    paths = glob.glob(os.path.join(REPO, "tools", "*.py")) + glob.glob(os.path.join(REPO, "benchmarks", "*.py"))
    return sorted(os.path.relpath(p, REPO) for p in paths if "__main__" in read(os.path.relpath(p, REPO)))


# ------------------------------------------------------------------ the subprocess
@pytest.fixture(scope="module")
def docs_run(datasets_dir, tmp_path_factory):
    """Runs the pages' python blocks and parses their command lines in one subprocess; its JSON report."""
    tmp = tmp_path_factory.mktemp("docs")
    pages = {}
    for page in PAGES:
        blocks = [(lang, code, line) for lang, code, line, reason in code_blocks(page)
                  if lang in ("python", "yaml") and reason is None]
        files = [(file_label(code), code, line) for lang, code, line in blocks if file_label(code)]
        run = [(code, line) for lang, code, line in blocks if lang == "python" and not file_label(code)]
        if files or run:
            pages[page] = {"files": files, "run": run}
    scripts = sorted({s for _, _, s, _ in script_commands()} | set(main_scripts()))
    spec = {"pages": pages, "commands": script_commands(), "help": scripts, "work": str(tmp)}
    spec_path, out_path = tmp / "spec.json", tmp / "report.json"
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ, DETECTRON2_DATASETS=datasets_dir, OMP_NUM_THREADS="1", MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join([REPO] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), str(spec_path), str(out_path)], env=env,
                          text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    assert proc.returncode == 0 and out_path.exists(), proc.stdout[-8000:]
    return json.loads(out_path.read_text())


@pytest.mark.parametrize("page", PAGES)
def test_python_blocks_run(docs_run, page):
    result = docs_run["pages"].get(page)
    if result is None:
        return  # no python block on this page
    assert result["error"] is None, f"{page}: {result['error']}\n--- output ---\n{result['output'][-4000:]}"


def test_command_lines_parse(docs_run):
    """Each script's own parser accepts each command line the pages give it."""
    assert script_commands(), "no command lines found"
    failed = [c for c in docs_run["commands"] if c["error"]]
    assert not failed, "\n".join(f"{c['page']}:{c['line']}: python {c['script']} {' '.join(c['argv'])}\n  "
                                 f"{c['error']}" for c in failed)


def test_flags_exist(docs_run):
    """Every --flag named in the pages is one of the repository's scripts' (or listed in OTHER_FLAGS)."""
    helps = "\n".join(docs_run["help"].values())
    known = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", helps)) | set(OTHER_FLAGS)
    missing = []
    for page in PAGES:
        for n, line in enumerate(read(page).splitlines(), 1):
            missing += [f"{page}:{n}: {f}" for f in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", line) if f not in known]
    assert not missing, "flags no script has:\n" + "\n".join(missing)


def test_make_targets_and_variables_exist():
    makefile = read("Makefile")
    targets = set(re.findall(r"^([\w-]+):", makefile, re.M))
    variables = set(re.findall(r"^([A-Z_]+)\s*[?:]?=", makefile, re.M))
    cmds = make_commands()
    assert cmds, "no make command found"
    bad = []
    for page, line, args in cmds:
        for a in args:
            if "=" in a:
                if a.split("=")[0] not in variables:
                    bad.append(f"{page}:{line}: variable {a.split('=')[0]}")
            elif not a.startswith("-") and a not in targets:
                bad.append(f"{page}:{line}: target {a}")
    assert not bad, bad


def test_config_paths_and_links_exist():
    bad = []
    for page in PAGES:
        text = read(page)
        for path in re.findall(r"(?<![\w/.])configs/[\w.\-/*]*[\w*/]", text):
            if "*" in path:
                ok = bool(glob.glob(os.path.join(REPO, path)))
            else:
                ok = os.path.exists(os.path.join(REPO, path))
            if not ok:
                bad.append(f"{page}: {path}")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if "://" in target or target.startswith("#"):
                continue
            path = os.path.normpath(os.path.join(REPO, os.path.dirname(page), target.split("#")[0]))
            if not os.path.exists(path):
                bad.append(f"{page}: link {target}")
    assert not bad, "not in the tree:\n" + "\n".join(bad)


def test_pages_and_not_run_blocks():
    """The README stays short, every docs page exists, and only a few blocks are not run."""
    assert len(read("README.md").splitlines()) <= README_MAX_LINES
    assert set(DOC_PAGES) <= set(PAGES), set(DOC_PAGES) - set(PAGES)
    skipped = [(page, line, reason) for page in PAGES for lang, _, line, reason in code_blocks(page)
               if reason is not None]
    assert all(lang in ("python", "bash", "yaml", "text") for page in PAGES for lang, *_ in code_blocks(page) if lang), \
        "a code block in another language"
    assert len(skipped) <= MAX_NOT_RUN, skipped
    python_blocks = [1 for page in PAGES for lang, *_ in code_blocks(page) if lang == "python"]
    assert len(python_blocks) >= 8, "the pages have fewer python blocks than expected: is the parser broken?"


def test_makefile_and_ci_say_what_the_readme_says():
    readme, makefile, ci = read("README.md"), read("Makefile"), read(".ci/run")
    for line in makefile.splitlines()[:5] + ci.splitlines()[:3]:
        for cmd in re.findall(r"make (demo|test|env|train)", line):
            assert f"make {cmd}" in readme, f"Makefile / .ci/run mention make {cmd}, the README does not"
    demo_minutes = re.search(r"~(\d+) min on 2 cores", makefile)
    assert demo_minutes and f"~{demo_minutes.group(1)} min" in readme, "make demo's duration differs"


# The README's "which method" rows -> the benchmark report's rows whose bbox APr / APf they quote
WHICH_METHOD_ROWS = {
    "Seesaw + RFS": "Seesaw (linear, RFS)",
    "NorCal on softmax (normed) + RFS": "softmax (normed, RFS) + NorCal",
    "NorCal on softmax + RFS": "softmax + RFS + NorCal",
    "Balanced Softmax + RFS": "Balanced Softmax + RFS",
    "Balanced Softmax + RFS, sampler's prior": "Balanced Softmax + RFS, sampler's prior",
    "Balanced Softmax, decoupled": "Balanced Softmax decoupled (tau 1)",
    "BALMS (+ Meta Reweighter)": "BALMS decoupled (bank)",
    "post-hoc logit adjustment": "softmax + post-hoc LA (tau 1)",
    "softmax (stock detectron2)": "softmax (stock head)",
}


def _table_rows(text):
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| method")]


def test_which_method_table_quotes_the_benchmark_report():
    """Every row of the README's "which method" table has the APr / APf of its row in the committed report
    (benchmarks/results/long_tail.md, bbox), so the table cannot fall behind the measured one."""
    readme = read("README.md").split("## Which method?", 1)[1].split("\n## ", 1)[0]
    report = {row[0]: row for row in _table_rows(read("benchmarks/results/long_tail.md")) if len(row) == 11}
    rows = _table_rows(readme)
    assert len(rows) >= 5
    for row in rows:
        assert row[0] in WHICH_METHOD_ROWS, f"README row {row[0]!r}: which report row does it quote?"
        ref = report[WHICH_METHOD_ROWS[row[0]]]
        assert (row[-2], row[-1]) == (ref[3], ref[5]), (row[0], row[-2:], (ref[3], ref[5]))


# ------------------------------------------------------------------ run as a script: the subprocess's work
class _Parsed(Exception):
    pass


def _prepare_workdir(path):
    """A working directory whose configs/ holds the repository's configs (file by file, as links)."""
    os.makedirs(path)
    for root, _, files in os.walk(os.path.join(REPO, "configs")):
        rel = os.path.relpath(root, REPO)
        os.makedirs(os.path.join(path, rel), exist_ok=True)
        for f in files:
            os.symlink(os.path.join(root, f), os.path.join(path, rel, f))


def _run_page(page, spec, work):
    import contextlib
    import io
    import traceback

    from detectron2.data import DatasetCatalog, MetadataCatalog

    from balms_det.modeling import CALIBRATION_REGISTRY, CLS_LOSS_REGISTRY

    registries = (CLS_LOSS_REGISTRY, CALIBRATION_REGISTRY)
    datasets_before = set(DatasetCatalog.list())
    registered_before = [set(r._obj_map) for r in registries]
    cwd, path0 = os.getcwd(), list(sys.path)
    _prepare_workdir(work)
    os.chdir(work)
    sys.path.insert(0, work)
    out, error = io.StringIO(), None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            for name, code, line in spec["files"]:
                os.makedirs(os.path.dirname(os.path.abspath(name)), exist_ok=True)
                with open(name, "w") as f:
                    f.write(code)
                if name.endswith(".py"):
                    compile(code, f"{page}:{line} ({name})", "exec")
            namespace = {"__name__": "__main__"}
            for code, line in spec["run"]:
                exec(compile("\n" * (line - 1) + code, page, "exec"), namespace)
    except BaseException:  # noqa: B902  (SystemExit of a block too)
        error = traceback.format_exc(limit=-6)
    finally:
        os.chdir(cwd)
        sys.path[:] = path0
        for name in set(DatasetCatalog.list()) - datasets_before:
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        for reg, before in zip(registries, registered_before):
            for name in set(reg._obj_map) - before:
                del reg._obj_map[name]
    return {"error": error, "output": out.getvalue()}


def _parse(script, argv):
    """Parse ``argv`` with ``script``'s own parser: its ``parse_args(argv)`` where it has one, else its
    ``__main__`` run until argparse has parsed. Returns (error or None, help text printed)."""
    import argparse
    import contextlib
    import io
    import runpy

    path = os.path.join(REPO, script)
    if not os.path.isfile(path):
        return f"no such script: {script}", ""
    out = io.StringIO()
    original = argparse.ArgumentParser.parse_args

    def parsed(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    argv0, path0 = sys.argv, list(sys.path)
    sys.path.insert(0, os.path.dirname(path))
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            module = runpy.run_path(path, run_name="docs_check")
            if callable(module.get("parse_args")):
                module["parse_args"](list(argv))
            else:
                sys.argv = [path] + list(argv)
                argparse.ArgumentParser.parse_args = parsed
                try:
                    runpy.run_path(path, run_name="__main__")
                finally:
                    argparse.ArgumentParser.parse_args = original
                return f"{script} ran without parsing a command line", out.getvalue()
    except _Parsed:
        return None, out.getvalue()
    except SystemExit as e:
        return (None if e.code in (0, None) else f"exit {e.code}: {out.getvalue().strip()[-600:]}"), out.getvalue()
    except Exception as e:  # noqa: B902
        return f"{type(e).__name__}: {e}", out.getvalue()
    finally:
        sys.argv, sys.path[:] = argv0, path0
    return None, out.getvalue()


def _main(spec_path, out_path):
    import matplotlib

    matplotlib.use("Agg")
    import balms_det  # noqa: F401  (imported once, as the pages' blocks do)

    with open(spec_path) as f:
        spec = json.load(f)
    report = {"pages": {}, "commands": [], "help": {}}
    for i, (page, blocks) in enumerate(sorted(spec["pages"].items())):
        work = os.path.join(spec["work"], f"page{i}")
        report["pages"][page] = _run_page(page, blocks, work)
    for page, line, script, argv in spec["commands"]:
        error, _ = _parse(script, argv)
        report["commands"].append({"page": page, "line": line, "script": script, "argv": argv, "error": error})
    for script in spec["help"]:
        error, text = _parse(script, ["--help"])
        report["help"][script] = text
    with open(out_path, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])
