"""The demo page in headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

alice signs in on server A's page and bob on server B's page, in two separate browsers. alice presses Sync (the page
asks with the typed client event sheet:sync:request and keeps the job id of its ack): her progress bar moves through
the values the worker sent and ends at 100 % with the completed result; bob's page shows nothing of it. A
python-socketio client signed in as alice on server B records what the worker sent, so the page is compared with the
real events. The test saves a screenshot of alice's page (the README's picture), then drops the page's WebSocket and
checks that it reconnects, authenticates again and still receives syncs.
"""

import asyncio
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
import socketio
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import REPO, token_for

WAIT = 30.0
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
INSTALL_HINT = "install Debian's browser and driver: apt-get install chromium chromium-driver (tools/test does)"
# Where the README's screenshot lives; the test rewrites it only when asked to, so test runs leave the tree clean.
README_SCREENSHOT = REPO / "tools" / "demo-screenshot.png"


def browser() -> webdriver.Chrome:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail(f"headless Chromium is missing ({CHROMIUM}, {CHROMEDRIVER}); {INSTALL_HINT}")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1200,1020", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


class Recorder:
    """A python-socketio client, in its own thread, recording the sheet:sync:* events one user receives."""

    def __init__(self, url: str, token: str):
        self.events: list[tuple[str, dict]] = []
        self.ready = threading.Event()
        self.error = None
        self.url, self.token = url, token
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = socketio.AsyncClient(reconnection=False)
        for name in ("sheet:sync:started", "sheet:sync:progress", "sheet:sync:completed", "sheet:sync:failed"):
            self.client.on(name, self._record(name))
        asyncio.run_coroutine_threadsafe(
            self.client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=WAIT), self.loop
        ).result(WAIT)

    def _record(self, name):
        async def record(payload):
            self.events.append((name, payload))

        return record

    def close(self):
        asyncio.run_coroutine_threadsafe(self.client.disconnect(), self.loop).result(WAIT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)


def sign_in(driver, url: str, user: str):
    driver.get(url)
    field = driver.find_element(By.ID, "user")
    field.clear()
    field.send_keys(user)
    driver.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    wait_until(driver, lambda d: d.find_element(By.ID, "connection").get_attribute("data-state") == "connected",
               f"{user}'s page to connect")
    assert driver.find_element(By.ID, "who").text == user


def wait_until(driver, condition, what: str, timeout: float = WAIT):
    try:
        WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)
    except TimeoutException:
        log = driver.find_element(By.ID, "event-log").text
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; page's event log:\n{log}")


def card(driver, sheet: str):
    return driver.find_element(By.CSS_SELECTOR, f'.sheet[data-sheet="{sheet}"]')


def test_the_page_shows_a_sync_live_to_its_user_only(demo_with_redis_url, tmp_path):
    demo = demo_with_redis_url
    alice_page, bob_page = browser(), browser()
    recorder = None
    try:
        sign_in(alice_page, demo.server_a + "/", "alice")
        sign_in(bob_page, demo.server_b + "/", "bob")
        recorder = Recorder(demo.server_b, token_for(demo.server_b, "alice"))

        # Watch alice's bar move: sample data-state and aria-valuenow as fast as the driver allows.
        card(alice_page, "customers").find_element(By.CSS_SELECTOR, "button.sync").click()
        seen_percents = []
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            sheet = card(alice_page, "customers")
            state = sheet.get_attribute("data-state")
            percent = float(sheet.find_element(By.CSS_SELECTOR, ".progress").get_attribute("aria-valuenow"))
            if not seen_percents or seen_percents[-1] != percent:
                seen_percents.append(percent)
            if state == "completed":
                break
            time.sleep(0.02)
        sheet = card(alice_page, "customers")
        assert sheet.get_attribute("data-state") == "completed", f"bar stopped at {seen_percents}"

        # The page shows exactly what the worker sent (as recorded by a second client of alice's, on server B).
        wait_until(alice_page, lambda d: any(n == "sheet:sync:completed" for n, _ in recorder.events), "the recorder")
        job = sheet.get_attribute("data-job")
        sent = [(name, payload) for name, payload in recorder.events if payload["job_id"] == job]
        # Sync went through the typed client event sheet:sync:request; its ack's job id is the one the worker's
        # events carry.
        assert sheet.get_attribute("data-requested-with") == "sheet:sync:request"
        assert sent, f"no event of the acked job {job}: {recorder.events}"
        demo.wait_for_line(rf"server-A\s+alice asked to sync customers \(sheet:sync:request\): job {job[:8]} queued", 5)
        completed = next(payload for name, payload in sent if name == "sheet:sync:completed")
        sent_percents = [payload["percent"] for name, payload in sent if name == "sheet:sync:progress"]
        assert set(seen_percents) - {0.0, 100.0} <= set(sent_percents), (seen_percents, sent_percents)
        assert len(seen_percents) >= 3, f"the bar did not move in steps: {seen_percents}"
        assert seen_percents == sorted(seen_percents)
        assert sheet.find_element(By.CSS_SELECTOR, ".progress").get_attribute("aria-valuenow") == "100"
        assert sheet.get_attribute("data-rows") == str(completed["rows"])
        result = sheet.find_element(By.CSS_SELECTOR, ".result").text
        assert f"{completed['rows']:,} rows imported" in result
        for warning in completed["warnings"]:
            assert warning["message"] in result
        page_log = alice_page.find_element(By.ID, "event-log").text
        last_progress = [payload for name, payload in sent if name == "sheet:sync:progress"][-1]
        assert f"{last_progress['stage']} {last_progress['processed']}/{last_progress['total']}" in page_log

        # A failing sheet shows the worker's typed error.
        card(alice_page, "legacy-import").find_element(By.CSS_SELECTOR, "button.sync").click()
        wait_until(alice_page, lambda d: card(d, "legacy-import").get_attribute("data-state") == "failed", "the failure")
        failure = card(alice_page, "legacy-import").find_element(By.CSS_SELECTOR, ".result").text
        assert "invalid_data" in failure and "row 118" in failure

        # bob's page, on the other server, saw none of it.
        for sheet in bob_page.find_elements(By.CSS_SELECTOR, ".sheet"):
            assert sheet.get_attribute("data-state") == "idle", sheet.get_attribute("data-sheet")
        assert "sheet:sync" not in bob_page.find_element(By.ID, "event-log").text
        assert bob_page.find_element(By.ID, "connection").get_attribute("data-state") == "connected"

        # The README's picture: one sync done, one failed, one under way.
        card(alice_page, "budget-2026").find_element(By.CSS_SELECTOR, "button.sync").click()
        wait_until(
            alice_page,
            lambda d: float(card(d, "budget-2026").find_element(By.CSS_SELECTOR, ".progress").get_attribute("aria-valuenow")) >= 50,
            "the third sync to get half way",
        )
        shot = tmp_path / "demo-screenshot.png"
        assert alice_page.save_screenshot(str(shot))
        if os.environ.get("SOCKET_GATEWAY_UPDATE_SCREENSHOT") == "1":
            shutil.copyfile(shot, README_SCREENSHOT)
        wait_until(alice_page, lambda d: card(d, "budget-2026").get_attribute("data-state") == "completed", "the third sync")

        # The connection drops (as on a network change): the page reconnects, signs in again, and keeps working.
        old_sid = alice_page.execute_script("return window.sheetSync.socket.id")
        alice_page.execute_script("window.sheetSync.socket.ws.close()")
        wait_until(alice_page, lambda d: "reconnecting" in d.find_element(By.ID, "event-log").text, "the page to notice")
        wait_until(alice_page, lambda d: d.find_element(By.ID, "connection").get_attribute("data-state") == "connected"
                   and d.execute_script("return window.sheetSync.socket.id") != old_sid, "the page to reconnect")
        card(alice_page, "inventory").find_element(By.CSS_SELECTOR, "button.sync").click()
        wait_until(alice_page, lambda d: card(d, "inventory").get_attribute("data-state") == "completed", "a sync after reconnecting")
        assert card(alice_page, "inventory").get_attribute("data-rows") == "642"
        assert card(alice_page, "inventory").get_attribute("data-requested-with") == "sheet:sync:request"
    finally:
        if recorder:
            recorder.close()
        alice_page.quit()
        bob_page.quit()
