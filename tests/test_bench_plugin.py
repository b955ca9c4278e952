"""The benchmark suite's pytest plumbing: its options' help, its state on config.stash, where its helpers live,
and the one piece of pytest-benchmark's private API it relies on (`record_rounds`)."""

import ast
import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


def option_help(text: str) -> dict[str, str]:
    """--vgg-* option -> its help text, from the "VGG benchmark grid" section of `pytest --help`."""
    section = text.split("VGG benchmark grid:", 1)[1].split("\n\n", 1)[0]
    blocks = re.split(r"\n  (?=--vgg-)", "\n" + section)
    return {re.match(r"\s*(--vgg-[a-z-]+)", b).group(1): " ".join(b.split()) for b in blocks if b.strip()}


def test_every_option_states_its_default(suite):
    result = suite.runpytest_subprocess("bench", "--help")
    assert result.ret == 0
    helps = option_help(result.stdout.str())
    assert len(helps) == 28 and "--vgg-head" in helps and "--vgg-world-sizes" in helps and "--vgg-target" in helps
    assert {"--vgg-profile", "--vgg-profile-layers", "--vgg-profile-rounds", "--vgg-optimizer"} <= set(helps)
    missing = [name for name, text in helps.items() if "default" not in text]
    assert missing == []
    assert "at least 6 rounds" in helps["--vgg-max-time"] and "(default 2%)" in helps["--vgg-precision"]
    assert "quick grid: cpu 1,4 / cuda 32,64 / mps 8,16" in helps["--vgg-batch-sizes"]


RECORD = """
import pytest
from pytest_benchmark.fixture import FixtureAlreadyUsed

from bench.sampling import record_rounds


def test_recorded(benchmark):
    record_rounds(benchmark, [0.3, 0.1, 0.2, 0.4])


def test_used_once_only(benchmark):
    record_rounds(benchmark, [0.1])
    with pytest.raises(FixtureAlreadyUsed):
        benchmark.pedantic(lambda: None, rounds=1)
"""


def test_record_rounds_still_fits_pytest_benchmark(pytester, monkeypatch):
    """`record_rounds` writes pytest-benchmark's private `_mode` and calls its `_make_stats`: if a release changes
    either, this fails (pyproject bounds the version; raise the bound only with this test passing)."""
    # bench/ is no installed package: the subprocess finds it from the checkout, as a user's pytest run would.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    pytester.makepyfile(test_record=RECORD)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--benchmark-json=out.json")
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=2)
    stats = {b["name"]: b["stats"] for b in json.loads((pytester.path / "out.json").read_text())["benchmarks"]}
    recorded = stats["test_recorded"]
    assert (recorded["rounds"], recorded["iterations"]) == (4, 1)
    assert (recorded["min"], recorded["max"]) == (0.1, 0.4)
    assert recorded["median"] == pytest.approx(0.25) and recorded["mean"] == pytest.approx(0.25)


UNSTABLE_PLUGIN = """
import bench.sampling

bench.sampling.stability = lambda times, precision: ["planted: every case unstable"]
"""


def test_unstable_cases_are_listed_from_the_stash(suite, monkeypatch):
    suite.makepyfile(unstable_plugin=UNSTABLE_PLUGIN)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(suite.path), os.environ.get("PYTHONPATH", "")]))
    result = suite.runpytest_subprocess("bench", "-p", "unstable_plugin", "--benchmark-only", "-p", "no:cacheprovider",
                                        "--vgg-width=0.125", "--vgg-image-size=32", "--vgg-max-time=0.01",
                                        "--vgg-devices=cpu", "--vgg-archs=A", "--vgg-modes=forward",
                                        "--vgg-batch-sizes=1")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*unstable benchmark cases*",
                                 "A-forward-cpu-fp32-32px-w0.125-b1-vggcore: planted: every case unstable",
                                 "1 unstable case(s): give it more time*"])


def imports(path: Path) -> list[str]:
    """Every module a file imports, relative ones with their dots."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names += [base] if node.module else [base + a.name for a in node.names]
    return names


def test_no_bench_module_imports_a_test_module_or_a_conftest():
    """The suite's shared helpers live in modules (bench.runner, bench.session), never in test modules or
    conftest; the same for this project's tests of the suite."""
    bad = []
    mine = ["test_bench.py", "test_bench_plugin.py", "test_sampling.py", "test_gpu_check.py"]
    for path in [*BENCH.glob("*.py"), *(ROOT / "tests" / name for name in mine)]:
        for name in imports(path):
            last = name.lstrip(".").split(".")[-1]
            if last.startswith("test_") or last == "conftest" or name.lstrip(".").startswith("tests"):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert bad == []


def test_plugin_state_lives_on_the_stash():
    """No `config._vgg_*` attributes: the suite's state is under bench.session's StashKeys."""
    found = [f"{p.name}:{node.lineno} {node.attr}" for p in BENCH.glob("*.py")
             for node in ast.walk(ast.parse(p.read_text()))
             if isinstance(node, ast.Attribute) and node.attr.startswith("_vgg")]
    assert found == []
