"""report.html renders in a real headless browser (Chromium) with its plots drawn, offline."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from bokeh.palettes import Category10_10, Dark2_8
from PIL import Image

from mpp.scenario.report import write_report
from tests.test_report import sample_run

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Chromium is not installed at /usr/bin/chromium "
           "(apt-get install chromium; .ci/run installs it)",
)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with no network services, in a throwaway profile."""
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
           "--virtual-time-budget=10000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False,
                          env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})


def rgb(hex_color: str) -> tuple[int, int, int]:
    return tuple(int(hex_color[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(sample_run(), tmp_path_factory.mktemp("browser"))["html"]


def test_bokeh_builds_the_document_in_the_browser(page: Path, tmp_path: Path) -> None:
    done = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    # BokehJS replaces the placeholder with its root view; the static file has no such element.
    assert 'class="bk-Column"' not in page.read_text()
    assert 'class="bk-Column"' in done.stdout


def test_plots_are_drawn_on_canvas(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    done = chromium(tmp_path, "--window-size=1100,1800", f"--screenshot={shot}", page.as_uri())
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    pixels = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 24) or []
    counts = {color: n for n, color in pixels}
    # Glyph colours only a drawn canvas can produce: the variant bars (Dark2) and the
    # stage-coloured task bars of the first timeline (Category10).
    for name, color in (("variant 1 bar", Dark2_8[0]), ("variant 2 bar", Dark2_8[1]),
                        ("stage 0 tasks", Category10_10[0]), ("stage 1 tasks", Category10_10[1])):
        assert counts.get(rgb(color), 0) > 500, f"{name} ({color}) not drawn"
