"""Headless Chromium (Debian's chromium and chromium-driver, driven by Selenium) for checks
of what a person sees: pages whose images load and whose text holds no raw Python values."""

from __future__ import annotations

import re
import shutil
import time
from contextlib import contextmanager

import pytest

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
RAW_VALUE = re.compile(r"\b(None|nan|NaN|inf)\b")


@contextmanager
def chromium():
    """A headless Chromium, or a skip where it is not installed (CI installs it)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install)")
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_window_size(1400, 1000)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, script: str, timeout: float = 10.0):
    """The value of `script` once it is truthy (pages render after load)."""
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script)
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def broken_images(driver) -> list[str]:
    """Images of the page (and of its frames) that did not load."""
    script = ("return Array.from(document.images).filter(i => !(i.complete && "
              "i.naturalWidth > 0)).map(i => i.src.slice(0, 80))")
    broken = driver.execute_script(script)
    for frame in driver.find_elements("tag name", "iframe"):
        driver.switch_to.frame(frame)
        broken += driver.execute_script(script)
        driver.switch_to.default_content()
    return broken


def visible_text(driver) -> str:
    """The page's text with that of its frames."""
    text = driver.execute_script("return document.body.innerText")
    for frame in driver.find_elements("tag name", "iframe"):
        driver.switch_to.frame(frame)
        text += "\n" + driver.execute_script("return document.body.innerText")
        driver.switch_to.default_content()
    return text
