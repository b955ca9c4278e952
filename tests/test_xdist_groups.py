"""`./dev test` runs `-n 2 --dist loadgroup`: tests marked with one xdist_group (the Ray tests, the readers of one
module-scoped run) must share a worker, or each worker starts its own Ray or trains the shared run again."""

import pytest

pytest.importorskip("xdist")

GROUPED = """
import os, pytest

@pytest.mark.xdist_group("shared")
@pytest.mark.parametrize("i", range(6))
def test_grouped(i):
    with open(os.environ["WORKERS_FILE"], "a") as f:
        f.write(os.environ.get("PYTEST_XDIST_WORKER", "none") + "\\n")

@pytest.mark.parametrize("i", range(6))
def test_free(i):
    pass
"""


def test_tests_of_one_group_run_on_one_worker(pytester, tmp_path, monkeypatch):
    pytester.makepyfile(test_grouped=GROUPED)
    pytester.makeconftest("pytest_plugins = ['xdist_groups']\n")
    workers_file = tmp_path / "workers.txt"
    monkeypatch.setenv("WORKERS_FILE", str(workers_file))
    monkeypatch.setenv("PYTHONPATH", str(pytester.path.parent) + ":" + __import__("os").path.dirname(__file__))
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=12)
    seen = workers_file.read_text().split()
    assert len(seen) == 6 and len(set(seen)) == 1, seen
