"""End to end in a real headless browser (Debian's chromium through Playwright): open the form,
upload the shipped example (EMD-3488 map, Fourier-cropped to 72³ to save time, and the 5ME2
model, threshold 0.07, resolution 3.2),
watch the progress, see the finished report with its figures, find it in the archive and
download its PDF. A screenshot of each page goes to tmp_path and out/screenshots/."""
import os
import shutil

import pytest

from service_helpers import ROOT, Server
from simulate import small_example

CHROMIUM = "/usr/bin/chromium"
EXAMPLE_MODEL = os.path.join(ROOT, "examples", "5me2.pdb.gz")
SHOTS = os.path.join(ROOT, "out", "screenshots")

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"no chromium at {CHROMIUM} (Debian package chromium)")


def _shot(page, tmp_path, name):
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    try:
        os.makedirs(SHOTS, exist_ok=True)
        shutil.copy(path, os.path.join(SHOTS, f"service_{name}.png"))
    except OSError:
        pass
    return path


@pytest.mark.slow
def test_submit_watch_read_find_and_download_in_a_browser(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    with Server(tmp_path / "data", workers=1, extra=("--rate-limit", "0")) as srv, \
            playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900},
                                    accept_downloads=True)
            page.goto(srv.url + "/")
            assert page.title() == "cryovalid · submit"
            page.set_input_files("#map", small_example(tmp_path)[0])
            page.set_input_files("#model", EXAMPLE_MODEL)
            page.fill("#threshold", "0.07")
            page.fill("#resolution", "3.2")
            page.fill("#name", "haemoglobin example")
            _shot(page, tmp_path, "1_form")
            page.click("#go")
            page.wait_for_url("**/jobs/*")
            job_id = page.url.split("/jobs/")[1].split("?")[0]
            # progress, step by step, while it runs (the page polls the API)
            page.wait_for_selector("#steps tr", timeout=120_000)
            first = page.locator("#steps tr").count()
            # more steps appear without a reload (the page polls the API)
            page.wait_for_function(f"document.querySelectorAll('#steps tr').length > {first}",
                                   timeout=120_000)
            assert page.text_content("#status") == "running"
            assert page.locator("#steps tr td").first.text_content().startswith("Masks")
            _shot(page, tmp_path, "2_progress")
            page.wait_for_selector("#report", timeout=240_000)  # reloaded when done
            assert page.text_content("#status") == "done"
            assert "evaluable items passed" in page.text_content("#score")
            frame = page.frame_locator("#report")
            frame.locator("h1, h2").first.wait_for(timeout=30_000)
            figures = frame.locator("img").count()
            assert figures >= 10, figures  # the report's own figures, embedded
            assert frame.locator("img").first.evaluate("i => i.naturalWidth") > 0
            _shot(page, tmp_path, "3_report")
            fig = frame.locator("img").nth(2)  # one figure, as the frame shows it
            fig.scroll_into_view_if_needed()
            fig.screenshot(path=str(tmp_path / "3_report_figure.png"))
            assert (tmp_path / "3_report_figure.png").stat().st_size > 5_000
            shutil.copy(tmp_path / "3_report_figure.png",
                        os.path.join(SHOTS, "service_3_report_figure.png"))
            # the archive lists it, with its downloads
            page.goto(srv.url + "/archive?name=haemoglobin")
            row = page.locator(f"#job-{job_id}")
            assert row.count() == 1
            assert "done" in row.text_content() and "A" in row.text_content()
            _shot(page, tmp_path, "4_archive")
            with page.expect_download() as dl:
                row.locator("a.pdf").click()
            pdf = tmp_path / "report.pdf"
            dl.value.save_as(str(pdf))
            assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 100_000
        finally:
            browser.close()
