"""The review page in a real browser: headless Chromium (Debian's chromium + chromium-driver)
driven by Selenium annotates three tasks by keyboard and mouse, then the SQLite dataset and the
running pipeline's store are checked span by span.

Skipped, with the reason, where no browser is installed; test_app.py runs the same flows over
HTTP everywhere. With EL4NER_SCREENSHOT=path the review page is saved there as a PNG."""
import os
import shutil
import time

import pytest

from spacy_el4ner.annotate.app import LOOPBACK_NAMES, make_app
from spacy_el4ner.annotate.db import Database
from spacy_el4ner.annotate.review import Review

from .annotate_helpers import TEXTS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="no chromium/chromedriver: apt-get install chromium chromium-driver"),
]
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed: pip install -e '.[annotate]'")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1100,900"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=DRIVER))
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def wait_task(driver, text=None, timeout=120):
    """Wait until the page shows a task (``text``, if given) and is ready for input."""
    def ready(d):
        state = d.find_element(By.TAG_NAME, "body").get_attribute("data-state")
        shown = d.find_element(By.ID, "text").text
        return state == "ready" and (text is None or shown.startswith(text[:20]))
    WebDriverWait(driver, timeout).until(ready)


def tok(driver, i):
    return driver.find_element(By.CSS_SELECTOR, f"#text .tok[data-i='{i}']")


def drag(driver, first, last):
    """Select from the middle of token ``first`` to the middle of token ``last`` with the mouse:
    the page snaps the selection to whole tokens."""
    a, b = tok(driver, first), tok(driver, last)
    wa, wb = a.size["width"], b.size["width"]
    ActionChains(driver).move_to_element_with_offset(a, -wa // 4 + 1, 0).click_and_hold() \
        .move_to_element_with_offset(b, wb // 4, 0).release().perform()


def key(driver, k):
    ActionChains(driver).send_keys(k).perform()


def clear_spans(driver):
    while True:
        buttons = driver.find_elements(By.CSS_SELECTOR, "#text mark.ent .rm")
        if not buttons:
            return
        buttons[0].click()


def marks(driver):
    return [(m.get_attribute("data-label"), " ".join(t.text for t in m.find_elements(By.CSS_SELECTOR, ".tok")))
            for m in driver.find_elements(By.CSS_SELECTOR, "#text mark.ent")]


def wait_answers(db, n, timeout=30):
    deadline = time.time() + timeout
    while len(db.examples("ner")) != n:
        assert time.time() < deadline, db.examples("ner")
        time.sleep(0.1)


def test_annotate_three_tasks_by_keyboard_and_mouse(small_nlp, tmp_path, live_server, browser):
    db = Database(tmp_path / "a.db")
    review = Review(small_nlp, db, "ner", [(t, {}) for t in TEXTS[:4]])
    before = len(review.pipe.store)
    url = live_server(make_app(review, allowed_hosts=LOOPBACK_NAMES))
    browser.get(url)

    # 1: remove the suggestions (x), add Tim Cook (person) and Berlin (location) by dragging, accept with "a"
    wait_task(browser, TEXTS[0])
    assert [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#labels button")] == ["1 person", "2 location", "3 corporation"]
    clear_spans(browser)
    assert marks(browser) == []
    key(browser, "1")
    drag(browser, 0, 1)
    key(browser, "2")
    drag(browser, 3, 3)
    key(browser, "3")
    drag(browser, 6, 6)
    assert marks(browser) == [("person", "Tim Cook"), ("location", "Berlin"), ("corporation", "Siemens")]
    key(browser, "a")
    wait_answers(db, 1)

    # 2: "Elon Musk" added as corporation, then relabelled by a click with person active; Tesla, Austin
    wait_task(browser, TEXTS[1])
    clear_spans(browser)
    key(browser, "3")
    drag(browser, 0, 1)
    drag(browser, 3, 3)
    key(browser, "1")
    tok(browser, 0).click()
    key(browser, "2")
    drag(browser, 9, 9)
    assert marks(browser) == [("person", "Elon Musk"), ("corporation", "Tesla"), ("location", "Austin")]
    browser.find_element(By.ID, "accept").click()
    wait_answers(db, 2)

    # 3: ignored with space, taken back with backspace, then rejected with "x"
    wait_task(browser, TEXTS[2])
    if os.environ.get("EL4NER_SCREENSHOT"):
        browser.save_screenshot(os.environ["EL4NER_SCREENSHOT"])
    key(browser, " ")
    wait_answers(db, 3)
    wait_task(browser, TEXTS[3])
    key(browser, "\ue003")  # backspace
    wait_task(browser, TEXTS[2])
    wait_answers(db, 2)
    key(browser, "x")
    wait_answers(db, 3)
    wait_task(browser, TEXTS[3])

    # an earlier answer stays editable: task 1 from the history, Siemens removed, accepted again
    items = browser.find_elements(By.CSS_SELECTOR, "#history li")
    assert [i.find_element(By.CSS_SELECTOR, ".answer").text.lower() for i in items] == ["reject", "accept", "accept"]
    items[2].click()
    wait_task(browser, TEXTS[0])
    assert browser.find_element(By.ID, "banner").is_displayed()
    browser.find_element(By.CSS_SELECTOR, "#text mark.ent[data-label='corporation'] .rm").click()
    key(browser, "a")
    wait_task(browser, TEXTS[3])  # back to the open task
    assert not browser.find_element(By.ID, "banner").is_displayed()

    rows = {r["text"]: r for r in db.examples("ner")}
    assert list(rows) == TEXTS[:3]
    spans = {t: [(r["text"][s["start"]:s["end"]], s["label"]) for s in r["spans"]] for t, r in rows.items()}
    assert rows[TEXTS[0]]["answer"] == "accept" and spans[TEXTS[0]] == [("Tim Cook", "person"), ("Berlin", "location")]
    assert rows[TEXTS[1]]["answer"] == "accept" and spans[TEXTS[1]] == [("Elon Musk", "person"), ("Tesla", "corporation"), ("Austin", "location")]
    assert rows[TEXTS[2]]["answer"] == "reject"
    assert {r["_session_id"] for r in rows.values()} == {review.session}
    store = [(d.text, [(e.text, e.label_) for e in d.ents]) for d in review.pipe.store.docs]
    assert len(store) == before + 2
    assert sorted(store[before:]) == sorted([
        (TEXTS[0], [("Tim Cook", "person"), ("Berlin", "location")]),
        (TEXTS[1], [("Elon Musk", "person"), ("Tesla", "corporation"), ("Austin", "location")]),
    ])
    assert "2 accepted, 1 rejected, 0 ignored" in browser.find_element(By.ID, "counts").text
    db.close()


def test_two_tabs_answering_at_once_lose_nothing(small_nlp, tmp_path, live_server, browser):
    """Two tabs of the page, each with its own task; both accept at the same moment (a key press
    scheduled for the same instant in each), twice. Every answer reaches the dataset and the store."""
    db = Database(tmp_path / "a.db")
    review = Review(small_nlp, db, "ner", [(t, {}) for t in TEXTS[:4]])
    before = len(review.pipe.store)
    url = live_server(make_app(review, allowed_hosts=LOOPBACK_NAMES))
    browser.get(url)
    tabs = [browser.current_window_handle]
    browser.switch_to.new_window("tab")
    browser.get(url)
    tabs.append(browser.current_window_handle)
    for round_ in range(2):
        shown = []
        for tab in tabs:
            browser.switch_to.window(tab)
            wait_task(browser)
            shown.append(browser.find_element(By.ID, "card").get_attribute("data-task"))
        assert shown[0] != shown[1]  # never the same task in two tabs
        at = browser.execute_script("return Date.now() + 1500;")
        for tab in tabs:
            browser.switch_to.window(tab)
            browser.execute_script(
                "var at = arguments[0]; setTimeout(function () {"
                " document.dispatchEvent(new KeyboardEvent('keydown', {key: 'a', bubbles: true})); }, at - Date.now());", at)
        wait_answers(db, 2 * (round_ + 1), timeout=60)
    rows = db.examples("ner")
    assert sorted(r["text"] for r in rows) == sorted(TEXTS[:4]) and {r["answer"] for r in rows} == {"accept"}
    assert sorted(d.text for d in review.pipe.store.docs[before:]) == sorted(TEXTS[:4])
    db.close()
