"""The API docs work air-gapped: /docs (Swagger UI) and /redoc (ReDoc) load every asset from the
service itself, never from a CDN."""

from __future__ import annotations

import re

import pytest

from tests.service.conftest import requested_hosts


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_every_asset_from_the_service(sqlite_client, page):
    html = sqlite_client.get(page).text
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, html
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), asset
        assert sqlite_client.get(asset).status_code == 200, asset


@pytest.mark.slow
def test_docs_render_the_job_routes_in_a_browser_without_internet(serve, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = serve(f"sqlite:///{tmp_path / 'service.db'}", TAPWEIGHT_EXECUTOR="none")
    browser.get(f"{server.url}/docs")
    routes = ".opblock-summary-path"
    WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, routes))
    listed = {e.get_attribute("data-path") for e in browser.find_elements(By.CSS_SELECTOR, routes)}
    assert {"/jobs", "/jobs/{job_id}", "/jobs/{job_id}/cancel", "/health"} <= listed, listed
    assert requested_hosts(browser) == {"127.0.0.1"}
