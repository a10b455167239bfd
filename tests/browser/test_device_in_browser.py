"""The device authorization grant (RFC 8628) with a person in Chromium: the device
asks over HTTP and polls in a thread while the person signs in, enters or
confirms the code, and approves or denies on the verification page."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.servers.process import TOKEN, ServerProcess

from .conftest import PHONE, NewTab, Tab, User, assert_fits_a_phone, path_of, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

DEVICE_AUTHORIZATION = "/oauth2/device_authorization"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: Give up polling after this long: the person's part takes a few seconds.
POLL_TIMEOUT = 30.0


@dataclass
class Device:
    """A device that asked for authorization (RFC 8628 §3.1, §3.2) and polls for it."""

    server: ServerProcess
    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    interval: int
    #: The errors the polls got while the person had not decided, in order.
    errors: list[str] = field(default_factory=list)

    def poll(self, stop: threading.Event, polled: threading.Event) -> httpx.Response:
        """Poll every ``interval`` seconds (§3.4) until an answer that is not "wait" (§3.5)."""
        interval = self.interval
        form = {
            "grant_type": DEVICE_GRANT,
            "device_code": self.device_code,
            "client_id": self.server.deployment.public_client_id,
        }
        deadline = time.monotonic() + POLL_TIMEOUT
        with httpx.Client(base_url=self.server.url, timeout=10) as http:
            while True:
                response = http.post(TOKEN, data=form)
                polled.set()
                error = response.json().get("error")
                if error not in ("authorization_pending", "slow_down"):
                    return response
                self.errors.append(error)
                if error == "slow_down":
                    interval += 5
                # A little over the interval: the server counts whole seconds.
                if stop.wait(interval + 0.05) or time.monotonic() > deadline:
                    return response


StartDevice = Callable[[], tuple[Device, "Future[httpx.Response]"]]


@pytest.fixture
def start_device(server: ServerProcess) -> Iterator[StartDevice]:
    """Ask for a device authorization and start polling; returns once a poll was answered."""
    stop = threading.Event()
    with ThreadPoolExecutor() as pool:

        def start() -> tuple[Device, Future[httpx.Response]]:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                response = http.post(
                    DEVICE_AUTHORIZATION,
                    data={"client_id": server.deployment.public_client_id, "scope": "read"},
                )
            assert response.status_code == 200, response.text
            grant = response.json()
            device = Device(
                server,
                device_code=grant["device_code"],
                user_code=grant["user_code"],
                verification_uri=grant["verification_uri"],
                verification_uri_complete=grant["verification_uri_complete"],
                interval=grant["interval"],
            )
            polled = threading.Event()
            result = pool.submit(device.poll, stop, polled)
            assert polled.wait(10) or result.done(), "the first poll got no answer"
            return device, result

        yield start
        stop.set()


def enter_code(page: Page, code: str) -> None:
    page.get_by_role("heading", name="Connect a device").wait_for()
    entry = page.get_by_label("Code")
    entry.fill("")
    entry.press_sequentially(code)
    page.get_by_role("button", name="Continue").click()


def device_consent_page(page: Page) -> str:
    """The device consent page's text, once the browser shows it."""
    page.get_by_role("heading", name="Authorize a device").wait_for()
    assert path_of(page.url) == "/oauth2/device"
    return page.locator("main").inner_text()


def test_device_approved_from_the_complete_uri_gets_tokens(
    server: ServerProcess, tab: Tab, user: User, start_device: StartDevice
) -> None:
    page = tab.page
    device, polling = start_device()

    page.goto(device.verification_uri_complete)
    assert path_of(page.url) == "/oauth2/login"
    sign_in(page, user)

    page.get_by_role("heading", name="Connect a device").wait_for()
    assert page.get_by_label("Code").input_value() == device.user_code
    page.get_by_role("button", name="Continue").click()
    text = device_consent_page(page)
    assert "Native app on the device showing" in text
    assert device.user_code in text
    assert f"signed in as {user.username}" in text
    assert "Read your data" in text
    page.get_by_role("button", name="Approve").click()
    page.get_by_role("heading", name="Device connected").wait_for()

    response = polling.result(timeout=POLL_TIMEOUT)
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["scope"] == "read"
    assert tokens["access_token"]
    # Polled before the approval, never too often for the server.
    assert device.errors
    assert set(device.errors) == {"authorization_pending"}
    assert tab.csp_errors == []


def test_code_typed_in_lower_case_without_the_dash_is_accepted(
    server: ServerProcess, tab: Tab, user: User, start_device: StartDevice
) -> None:
    page = tab.page
    device, polling = start_device()

    page.goto(device.verification_uri)
    sign_in(page, user)
    assert page.get_by_label("Code").input_value() == ""
    # Vowels never appear in user codes: this one cannot exist.
    enter_code(page, "aeio-uaei")
    assert "that code is not valid" in page.get_by_role("alert").inner_text()
    enter_code(page, device.user_code.replace("-", "").lower())
    device_consent_page(page)
    # Shown as the device shows it, for the person to compare (RFC 8628 §5.4).
    assert page.locator("main code").inner_text() == device.user_code
    page.get_by_role("button", name="Approve").click()
    page.get_by_role("heading", name="Device connected").wait_for()

    response = polling.result(timeout=POLL_TIMEOUT)
    assert response.status_code == 200, response.text
    assert device.errors


def test_device_denied_gets_access_denied(
    server: ServerProcess, tab: Tab, user: User, start_device: StartDevice
) -> None:
    page = tab.page
    device, polling = start_device()

    page.goto(device.verification_uri_complete)
    sign_in(page, user)
    page.get_by_role("button", name="Continue").click()
    device_consent_page(page)
    page.get_by_role("button", name="Deny").click()
    page.get_by_role("heading", name="Request denied").wait_for()

    response = polling.result(timeout=POLL_TIMEOUT)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "access_denied"
    assert device.errors
    assert tab.csp_errors == []


def test_device_pages_fit_a_phone(
    server: ServerProcess, new_tab: NewTab, user: User, start_device: StartDevice
) -> None:
    tab = new_tab(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = tab.page
    device, _ = start_device()

    page.goto(device.verification_uri_complete)
    sign_in(page, user)
    page.get_by_role("heading", name="Connect a device").wait_for()
    assert_fits_a_phone(page, "Continue")
    page.get_by_role("button", name="Continue").tap()
    device_consent_page(page)
    assert_fits_a_phone(page, "Approve")
    assert_fits_a_phone(page, "Deny")
    assert tab.csp_errors == []
