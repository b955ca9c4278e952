"""The docs cannot rot silently: every command README.md and docs/*.md show is checked against what it names.

- `python -m MODULE SUBCOMMAND ...` (and `torchrun ... -m MODULE ...`): SUBCOMMAND must be one of MODULE's, and
  every `--option` the line uses must appear in `python -m MODULE SUBCOMMAND --help`;
- `pytest ...`: every `--option` must appear in `pytest bench --help` (the plugin's `--vgg-*`, pytest-benchmark's
  and pytest's own);
- `./dev SUBCOMMAND ...`: the subcommand must exist in `dev`, and its options in what it runs (`vggbench demo`,
  `vggbench gpu-check`, pytest); `tox -e ENV`: ENV must be in tox.ini; `python -c CODE`: CODE must compile;
- fenced `python` blocks must compile, fenced `toml` blocks must be valid study files;
- every relative link must reach a file, and its `#anchor` a heading there.
Commands are taken from fenced code blocks (every line) and from inline code that starts like one. All help texts
come from two subprocesses run side by side: one runs every `python -m ...` entry point in turn with --help (as
`python -m` does, through runpy), the other `pytest bench --help`.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from doc_blocks import block_lines, fenced_blocks

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md") if "_drafts" not in p.parts)]
OURS = {"vggcore", "ablations", "reports", "vggbench", "bench"}   # packages whose `python -m` the docs may show
PREFIXES = ("python -m ", "python3 -m ", "vggbench ", "pytest ", "./dev ", "tox ", "torchrun ")
# `vggbench SUB ...` runs the same parsers as `python -m MODULE SUB ...` (vggbench.cli): the module whose --help
# knows SUB's options, and how many leading words name the subcommand there
CONSOLE = {"study": ("ablations", 1), "report": ("reports", 1), "demo": ("vggbench", 0),
           "gpu-check": ("vggbench", 0), **{sub: ("vggcore", 0) for sub in ("list", "summary", "train", "evaluate",
                                                                              "profile")}}
SHELL_BLOCKS = {"bash", "sh", "shell", "console"}
PASS_THROUGH = {("vggbench", "demo"): "--bench-args"}   # options after it go to `pytest bench`
PLACEHOLDER = "..."   # `python -m ...`, `./dev ...`: the prose names the command
DEV_RUNS = {"demo": ("vggbench", "demo"), "gpu-check": ("vggbench", "gpu-check")}   # ./dev SUB -> python -m ...

# Runs `python -m MODULE ARGS... --help` for each request in one process, the way `python -m` would.
HELP_RUNNER = r"""
import contextlib, io, json, runpy, sys
out = {}
for module, args in json.loads(sys.argv[1]):
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    sys.argv = [module, *args, "--help"]
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as end:
            code = end.code if isinstance(end.code, int) else (0 if end.code is None else 1)
        except Exception as err:  # a module that cannot even print its help is a finding, not a crash here
            code, stderr = 1, io.StringIO(f"{type(err).__name__}: {err}")
    out[json.dumps([module, args])] = {"code": code, "out": stdout.getvalue(), "err": stderr.getvalue()}
print("HELP-JSON" + json.dumps(out))
"""


@dataclass(frozen=True)
class Shown:
    """One command as a page shows it."""
    doc: str     # page, relative to the repository
    line: int    # 1-based line of the page
    text: str    # the command as written


def shown_commands(doc: str, text: str) -> list[Shown]:
    """Every command line of the fenced shell blocks, the command-like lines of other blocks, and inline code
    spans that start like a command."""
    found = []
    for lang, first, body in fenced_blocks(text):
        if lang in ("python", "toml"):
            continue
        for number, line in block_lines(first, body):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if lang in SHELL_BLOCKS or _command_like(stripped):
                found.append(Shown(doc, number, stripped))
    outside = re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S | re.M)
    for m in re.finditer(r"`([^`\n]+)`", outside):
        span = m.group(1).replace("\\|", "|")
        if _command_like(span):
            found.append(Shown(doc, outside[:m.start()].count("\n") + 1, span))
    return found


def _command_like(text: str) -> bool:
    """Starts like a command, after any VAR=value assignments (`OUT=DIR ./dev gpu-check`)."""
    return re.sub(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)+", "", text).startswith(PREFIXES)


@dataclass
class Check:
    """What a command needs: (module, args) help requests, pytest options, and problems found while parsing."""
    shown: Shown
    kind: str = ""                           # "module", "pytest", "dev", "tox", "code", "other" (nothing to check)
    module: str = ""
    subcommands: tuple[str, ...] = ()        # alternatives: `demo|gpu-check` shows two
    options: tuple[str, ...] = ()            # --long options of the module part
    pytest_options: tuple[str, ...] = ()     # --long options that go to pytest
    problem: str = ""


def _long(tokens) -> tuple[str, ...]:
    return tuple(t.split("=")[0] for t in tokens if t.startswith("--") and t != "--")


def _split_module_args(module: str, rest: list[str]) -> tuple[list[str], list[str]]:
    """(args for the module, args passed through to pytest) for the PASS_THROUGH options."""
    for (mod, sub), flag in PASS_THROUGH.items():
        if module == mod and rest[:1] and sub in rest[0].split("|") and flag in rest:
            at = rest.index(flag) + 1
            return rest[:at], rest[at:]
    return rest, []


def parse(shown: Shown) -> Check:
    check = Check(shown)
    try:
        tokens = shlex.split(shown.text, comments=True)
    except ValueError as err:
        check.problem = f"cannot parse as a shell command ({err})"
        return check
    while tokens and re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[0]):   # VAR=value before the command
        tokens = tokens[1:]
    tokens = [t.lstrip("[").rstrip("]") for t in tokens]           # [--optional ARG] as the docs write it
    tokens = [t for t in tokens if t]
    if not tokens:
        check.problem = "empty command"
        return check
    head = tokens[0]
    if head == "vggbench":
        sub = tokens[1] if len(tokens) > 1 else ""
        if sub == PLACEHOLDER:   # `vggbench ...`: any command, named in the prose
            check.kind = "other"
            return check
        if sub not in CONSOLE:
            check.problem = f"vggbench {sub}: not a subcommand of vggbench ({', '.join(sorted(CONSOLE))})"
            return check
        module, skip = CONSOLE[sub]
        tokens = ["python", "-m", module, *tokens[1 + skip:]]
        head = "python"
    if head in ("python", "python3") and tokens[1:2] == ["-c"]:
        check.kind = "code"
        try:
            compile(tokens[2] if len(tokens) > 2 else "", "<doc>", "exec")
        except SyntaxError as err:
            check.problem = f"python -c code does not compile: {err}"
        return check
    if head == "torchrun" and "-m" not in tokens:
        check.kind = "other"   # torchrun's own options (`torchrun --standalone`) are torch's to document
        return check
    if head in ("python", "python3", "torchrun"):
        if "-m" not in tokens or tokens.index("-m") + 1 >= len(tokens):
            check.problem = f"{head} without -m MODULE: not a command these docs may show"
            return check
        at = tokens.index("-m")
        module, rest = tokens[at + 1], tokens[at + 2:]
        if module == PLACEHOLDER:   # `python -m ...`: any command, named in the prose
            check.kind = "other"
            return check
        if module.split(".")[0] not in OURS:
            check.problem = f"python -m {module}: not one of this project's packages ({', '.join(sorted(OURS))})"
            return check
        rest, passed = _split_module_args(module, rest)
        positional = [t for t in rest if not t.startswith("-")]
        check.kind, check.module = "module", module
        check.subcommands = tuple(positional[0].split("|")) if positional else ()
        check.options, check.pytest_options = _long(rest), _long(passed)
        return check
    if head == "pytest":
        check.kind, check.pytest_options = "pytest", _long(tokens[1:])
        return check
    if head == "./dev":
        check.kind = "dev"
        check.subcommands = tuple(tokens[1].split("|")) if len(tokens) > 1 and tokens[1] != PLACEHOLDER else ()
        if tokens[1:2] == [PLACEHOLDER]:
            return check
        if not check.subcommands:
            check.problem = "./dev without a subcommand"
        for sub in check.subcommands:
            if sub in DEV_RUNS:
                check.module = DEV_RUNS[sub][0]
                check.options = _long(tokens[2:])
            elif sub == "test":
                check.pytest_options = _long(tokens[2:])
        return check
    if head == "tox":
        check.kind = "tox"
        envs = [tokens[i + 1] for i, t in enumerate(tokens[:-1]) if t == "-e"]
        check.subcommands = tuple(e for env in envs for e in env.split(","))
        if not check.subcommands:
            check.problem = "tox without -e ENV"
        return check
    check.problem = f"{head}: a command form this test does not know; show python -m, pytest, ./dev or tox"
    return check


def help_requests(checks: list[Check]) -> list[tuple[str, list[str]]]:
    """Every (module, args) whose --help the checks need: each module alone, and with each subcommand named."""
    wanted = set()
    for c in checks:
        if c.kind == "module" or (c.kind == "dev" and c.module):
            wanted.add((c.module, ()))
            subs = [DEV_RUNS[s][1] for s in c.subcommands if s in DEV_RUNS] if c.kind == "dev" else c.subcommands
            wanted.update((c.module, (s,)) for s in subs)
    return sorted((m, list(a)) for m, a in wanted)


def gather_help(requests) -> tuple[dict, str]:
    """(module help texts keyed by (module, args), `pytest bench --help`), from two subprocesses at once."""
    env_cmd = [sys.executable, "-c", HELP_RUNNER, json.dumps(requests)]
    modules = subprocess.Popen(env_cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    plugin = subprocess.Popen([sys.executable, "-m", "pytest", "bench", "--help", "-p", "no:cacheprovider"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = modules.communicate(timeout=600)
    pytest_out, pytest_err = plugin.communicate(timeout=600)
    assert "HELP-JSON" in out, err[-3000:]
    assert plugin.returncode == 0 and "--vgg-archs" in pytest_out, pytest_err[-3000:]
    raw = json.loads(out.split("HELP-JSON", 1)[1])
    helps = {}
    for key, value in raw.items():
        module, args = json.loads(key)
        helps[(module, tuple(args))] = value
    return helps, pytest_out


def _has_option(help_text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", help_text) is not None


def _subcommands(help_text: str) -> set[str] | None:
    """The subcommands argparse lists first under "positional arguments:" as `{a,b,c}`, None when there are
    none (an option's choices, `--part {a,b}`, are no subcommands)."""
    m = re.search(r"^positional arguments:\n\s+\{([\w,-]+)\}", help_text, re.M)
    return set(m.group(1).split(",")) if m else None


def dev_subcommands() -> set[str]:
    return set(re.findall(r"^\s+([\w-]+)\)\s*$", (ROOT / "dev").read_text(), re.M))


def tox_envs() -> set[str]:
    return set(re.findall(r"^\[testenv:([\w-]+)\]", (ROOT / "tox.ini").read_text(), re.M))


def problems_of(check: Check, helps: dict, pytest_help: str) -> list[str]:
    if check.problem:
        return [check.problem]
    found = []
    for option in check.pytest_options:
        if not _has_option(pytest_help, option):
            found.append(f"{option} is not an option of `pytest bench --help`")
    if check.kind == "tox":
        found += [f"tox has no environment {e!r} (tox.ini: {', '.join(sorted(tox_envs()))})"
                  for e in check.subcommands if e not in tox_envs()]
    if check.kind == "dev":
        known = dev_subcommands()
        found += [f"./dev has no subcommand {s!r} (dev: {', '.join(sorted(known))})"
                  for s in check.subcommands if s not in known]
        subs = [DEV_RUNS[s][1] for s in check.subcommands if s in DEV_RUNS]
    else:
        subs = list(check.subcommands)
    if check.kind not in ("module", "dev") or not check.module:
        return found
    top = helps[(check.module, ())]
    if top["code"] != 0:
        return found + [f"python -m {check.module} --help exits {top['code']}: {top['err'].strip()[-300:]}"]
    choices = _subcommands(top["out"])
    targets = []
    if choices is None:
        targets = [(check.module, top["out"])]
    elif not subs and check.options:   # a bare `python -m ablations` names the tool; options need a subcommand
        found.append(f"python -m {check.module} needs a subcommand ({', '.join(sorted(choices))})")
    for sub in subs if choices is not None else []:
        if sub not in choices:
            found.append(f"python -m {check.module} has no subcommand {sub!r} ({', '.join(sorted(choices))})")
            continue
        got = helps[(check.module, (sub,))]
        if got["code"] != 0:
            found.append(f"python -m {check.module} {sub} --help exits {got['code']}: {got['err'].strip()[-300:]}")
        else:
            targets.append((f"{check.module} {sub}", got["out"]))
    for name, text in targets:
        found += [f"{option} is not an option of `python -m {name} --help`" for option in check.options
                  if not _has_option(text, option)]
    return found


# A page that shows what must be refused: the checker's own test, run with the same help texts.
BROKEN = """
```bash
python -m vggcore train --no-such-option 3
python -m reports no-such-subcommand --out r
pytest bench --benchmark-only --vgg-no-such-option 1
./dev no-such-subcommand
./dev demo --no-such-demo-option
tox -e no-such-env
python -m vggbench demo --bench-args --vgg-not-there 1
make everything
```
Inline `python -m ablations run STUDY.toml --out DIR --worker 2` too.
"""


@pytest.fixture(scope="module")
def checked():
    """(Check, problems) for every command of the docs and of BROKEN."""
    docs = [c for doc in DOCS for c in shown_commands(doc.relative_to(ROOT).as_posix(), doc.read_text())]
    broken = shown_commands("BROKEN", BROKEN)
    checks = [parse(s) for s in docs + broken]
    helps, pytest_help = gather_help(help_requests(checks))
    return [(c, problems_of(c, helps, pytest_help)) for c in checks]


def test_the_docs_show_commands_at_all(checked):
    docs = [c for c, _ in checked if c.shown.doc != "BROKEN"]
    kinds = {c.kind for c in docs}
    assert {"module", "pytest", "dev"} <= kinds, kinds
    assert len(docs) >= 40 and len({c.shown.doc for c in docs}) >= 6


def test_every_command_the_docs_show_exists_with_its_options(checked):
    bad = [f"{c.shown.doc}:{c.shown.line}: `{c.shown.text}`: {p}" for c, problems in checked
           if c.shown.doc != "BROKEN" for p in problems]
    assert not bad, "commands in the docs that do not match the code:\n" + "\n".join(bad)


def test_the_check_refuses_renamed_options_and_subcommands(checked):
    """Every line of BROKEN must be caught, each for its own reason (the check can fail)."""
    found = {c.shown.text: " ".join(p) for c, p in checked if c.shown.doc == "BROKEN"}
    expect = {"python -m vggcore train --no-such-option 3": "--no-such-option is not an option",
              "python -m reports no-such-subcommand --out r": "has no subcommand 'no-such-subcommand'",
              "pytest bench --benchmark-only --vgg-no-such-option 1": "--vgg-no-such-option is not an option",
              "./dev no-such-subcommand": "./dev has no subcommand",
              "./dev demo --no-such-demo-option": "--no-such-demo-option is not an option of `python -m vggbench",
              "tox -e no-such-env": "tox has no environment",
              "python -m vggbench demo --bench-args --vgg-not-there 1": "--vgg-not-there is not an option of `pytest",
              "make everything": "a command form this test does not know",
              "python -m ablations run STUDY.toml --out DIR --worker 2": "--worker is not an option"}
    for text, reason in expect.items():
        assert reason in found.get(text, ""), (text, found.get(text))


def test_python_and_toml_blocks_are_valid():
    from ablations.study import parse_study

    seen = 0
    for doc in DOCS:
        for lang, first, body in fenced_blocks(doc.read_text()):
            where = f"{doc.relative_to(ROOT)}:{first}"
            if lang == "python":
                compile(body, where, "exec")
                seen += 1
            elif lang == "toml":
                parse_study(tomllib.loads(body), source=where)   # a study file shown must be one
                seen += 1
    assert seen >= 2


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation but - and _ dropped, spaces to -."""
    outside = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    anchors = set()
    for title in re.findall(r"^#{1,6}\s+(.+?)\s*$", outside, re.M):
        anchors.add(re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-"))
    return anchors


def link_problems(doc: Path, text: str) -> list[str]:
    """Relative links of `text` (a page at `doc`) whose file or heading does not exist."""
    bad = []
    outside = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    for target in re.findall(r"\]\(([^)\s]+)\)", outside):
        if re.match(r"[a-z]+:", target):   # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if path and not file.exists():
            bad.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md":
            page = text if file == doc else file.read_text()
            if anchor not in heading_anchors(page):
                bad.append(f"{target}: no heading #{anchor} in {file.name}")
    return bad


def test_every_relative_link_reaches_its_file_and_heading():
    bad = [f"{doc.relative_to(ROOT)}: {p}" for doc in DOCS for p in link_problems(doc, doc.read_text())]
    assert not bad, "\n".join(bad)


def test_the_link_check_can_fail(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## Noise, comparisons and history\n")
    page = tmp_path / "page.md"
    text = ("# Page\n[ok](other.md#noise-comparisons-and-history) [ok](#page) [gone](missing.md) "
            "[renamed](other.md#noise) ![img](figure.png) [web](https://example.org/x)\n")
    assert link_problems(page, text) == ["missing.md: no such file", "other.md#noise: no heading #noise in other.md",
                                         "figure.png: no such file"]
