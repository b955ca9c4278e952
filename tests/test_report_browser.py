"""The HTML report in a real browser: built from the committed fixtures (tests/fixtures/), rendered by headless
Chromium in a 1,400 px window, no table may reach past the window, and the screenshot must show something.
A second page holds a table of 40 columns with long cells, which the renderer must cut and wrap to fit."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports.document import Report, prepare
from reports.readable import Flag
from reports.render import build

FIXTURES = Path(__file__).parent / "fixtures"
WINDOW = 1400
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium here (Debian: apt-get install "
                                                          "chromium); the report's layout is checked in a browser")]

# Writes what the layout looks like into the page, for --dump-dom to return.
PROBE = """<script>window.addEventListener('load', () => {
  const tables = [...document.querySelectorAll('table')].map(t => {
    const box = t.getBoundingClientRect();
    return {right: box.right, scroll: t.scrollWidth, client: t.clientWidth};
  });
  const colour = s => s ? getComputedStyle(s).color : null;
  const flag = document.querySelector('.flag');
  const probe = {window: window.innerWidth, page: document.documentElement.scrollWidth, tables: tables,
                 flag_title: flag ? flag.title : null, body: getComputedStyle(document.body).color,
                 open: colour(document.querySelector('.v.open')), bad: colour(document.querySelector('.v.bad'))};
  const out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify(probe);
  document.body.appendChild(out);
});</script>"""


def chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           f"--user-data-dir={tmp_path / 'chrome'}", f"--window-size={WINDOW},2000",
                           "--allow-file-access-from-files", "--hide-scrollbars", *args, page.as_uri()],
                          capture_output=True, text=True, timeout=120)


def layout(tmp_path: Path, index: Path) -> dict:
    probe = index.with_name("probe.html")
    probe.write_text(index.read_text().replace("</body>", PROBE + "</body>"))
    result = chromium(tmp_path, probe, "--virtual-time-budget=5000", "--dump-dom")
    match = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert match, result.stderr[-2000:]
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def assert_fits(found: dict) -> None:
    assert found["window"] == WINDOW
    assert found["tables"], "no table rendered"
    for i, t in enumerate(found["tables"]):
        assert t["right"] <= WINDOW and t["scroll"] <= t["client"], (i, t)
    assert found["page"] <= WINDOW, found


def assert_screenshot(tmp_path: Path, index: Path) -> None:
    shot = tmp_path / "shot.png"
    result = chromium(tmp_path, index, f"--screenshot={shot}")
    assert shot.is_file() and shot.stat().st_size > 1000, result.stderr[-2000:]
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2000, WINDOW)
    inked = (pixels < 200).mean()   # text, rules and figures; a blank page is all white
    assert 0.005 < inked < 0.9, inked


def test_the_fixture_report_fits_a_1400px_window(tmp_path):
    index = build([FIXTURES / "bench_5687e3f.json", FIXTURES / "bench_188a3a4.json"], [FIXTURES / "study_5687e3f"],
                  tmp_path / "rep")
    found = layout(tmp_path, index)
    assert_fits(found)
    # the unstable bf16 case of the fixture: a short flag whose reason is the hover text
    assert found["flag_title"] and "clusters" in found["flag_title"]
    assert found["open"] and found["open"] != found["body"]   # "undecided" is toned down, not body text
    assert_screenshot(tmp_path, index)


def test_a_very_wide_table_is_cut_and_wrapped_to_fit(tmp_path):
    out = tmp_path / "rep"
    prepare(out)
    r = Report(out)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"variant": [f"variant_{i}" for i in range(4)],
                          "error": ["FileNotFoundError: data root /a/very/long/path/that/never/ends/" + "x" * 120] * 4,
                          "decision": ["better", "worse", "equivalent", "undecided"],
                          "stability": [Flag("unstable", "rounds fall into two clusters")] + ["stable"] * 3,
                          **{f"measured_figure_{i}": rng.normal(size=4) * 1e4 for i in range(40)}})
    r.add("h1", "wide")
    r.table("wide", frame, "forty figures per row")
    index = out / "index.html"
    index.write_text(r.html("wide"))
    found = layout(tmp_path, index)
    assert_fits(found)
    assert len(found["tables"]) > 1   # cut into parts
    assert found["bad"] and found["bad"] not in (found["body"], found["open"])   # "worse" is coloured
    assert_screenshot(tmp_path, index)
