"""The emulator's live page (`wsctl local up` serves it), in a real browser: Debian's Chromium driven
through WebDriver (tests/support/browser.py), against a real emulator with real WebSocket clients.
Each test asserts what a person would see on the page (visible text, rows, colours), and what the
clients receive when the page acts.

The refusals (no secret, a foreign Host, a foreign Origin) are raw HTTP and WebSocket requests on
the page's port, each answered 403 and named in one line of the emulator's log.
"""

import http.client
import json
import re
import socket
import subprocess
import sys
import time

import pytest
from selenium.webdriver.common.keys import Keys
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from support.browser import chromium, page_url, wait_until
from support.emulator_fixtures import ROOT, Emulator, _clean_env, unique

FUNCTION = "wsctl-app"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    instance = Emulator(tmp_path_factory.mktemp("page"), ["--allow-client-broadcast"])
    yield instance
    instance.stop()


@pytest.fixture
def browser(tmp_path):
    with chromium(tmp_path / "profile") as driver:
        yield driver


def page_port(emulator) -> int:
    return int(re.search(r"^http://127\.0\.0\.1:(\d+)/", page_url(emulator)).group(1))


def secret(emulator) -> str:
    return page_url(emulator).split("?token=", 1)[1]


def open_page(driver, emulator) -> None:
    driver.get(page_url(emulator))
    wait_until(driver, lambda d: d.find_element("id", "status").text.startswith("live"), what="the live status")


# What a person sees, read from the page's DOM as visible text (innerText: a closed <details> shows
# only its summary).
CONNECTIONS = """return [...document.querySelectorAll('#connection-table tbody tr')].filter(r => !r.hidden)
  .map(r => [...r.cells].map(c => c.innerText))"""
CONVERSATION = """return [...document.querySelectorAll('#frames > li')].map(li => ({
  kind: li.className, head: li.querySelector('.head').innerText,
  body: (li.querySelector(':scope > .body') || {}).innerText || '',
  invocations: [...li.querySelectorAll('.invocation')].map(i => ({
    head: i.querySelector('.head').innerText, status: i.querySelector('.status').innerText,
    lines: [...i.querySelectorAll('.lines > li')].map(l => l.innerText)}))}))"""
FUNCTIONS = """return [...document.querySelectorAll('#function-table tbody tr')].map(r => [...r.cells].map(c => c.innerText))"""
REGISTRY = """return [...document.querySelectorAll('#registry-table tbody tr')].map(r => [...r.cells].map(c => c.innerText))"""


def rows(driver) -> dict:
    """Connection rows by user: [id, user, source IP, subprotocol, connected, last active, in / out]."""
    return {cells[1]: cells for cells in driver.execute_script(CONNECTIONS)}


def row_of(driver, user: str) -> list:
    return wait_until(driver, lambda d: rows(d).get(user), what="the connection of %s" % user)


def select_connection(driver, connection_id: str) -> None:
    """By keyboard: the row's button takes the focus, Enter chooses it."""
    button = driver.find_element("css selector", '#connection-table tr[data-id="%s"] button' % connection_id)
    button.send_keys(Keys.ENTER)
    wait_until(driver, lambda d: connection_id in d.find_element("id", "conversation-title").text,
               what="the conversation of %s" % connection_id)


def fill(driver, element_id: str, text: str) -> None:
    area = driver.find_element("id", element_id)
    area.clear()
    area.send_keys(text)


def result_of(driver, element_id: str) -> str:
    return wait_until(driver, lambda d: (lambda t: t if t and t != "…" else None)(
        d.find_element("id", element_id).text), what="the answer in #%s" % element_id)


def client(emulator, user: str):
    return connect(emulator.url_for(user), open_timeout=30, compression=None)


# -- the live view ------------------------------------------------------------------------------
def test_the_page_shows_who_is_connected_what_they_said_and_what_the_function_logged(emulator, browser):
    alice, bob = unique("alice"), unique("bob")
    open_page(browser, emulator)
    with client(emulator, alice) as a, client(emulator, bob) as b:
        mine = row_of(browser, alice)
        row_of(browser, bob)
        assert mine[2] == "127.0.0.1" and mine[3] == "–" and mine[6] == "0 / 0"
        alice_id = mine[0]
        select_connection(browser, alice_id)
        identity = browser.find_element("id", "identity").text
        assert "userId" in identity and alice in identity and "websockets" in identity  # authorizer context, agent

        a.send(json.dumps({"action": "sendMessage", "targetUserId": bob, "text": "hello bob"}))
        relayed = json.loads(b.recv(timeout=15))
        assert relayed["from"] == alice and relayed["text"] == "hello bob"
        assert json.loads(a.recv(timeout=15))["type"] == "sent"  # the route's answer to alice

        def relayed_frame(driver):
            items = driver.execute_script(CONVERSATION)
            frame = next((i for i in items if i["kind"] == "in" and "sendMessage" in i["head"]), None)
            done = frame and frame["invocations"] and frame["invocations"][0]["status"] == "ok"
            return (frame, items) if done else None

        frame, items = wait_until(browser, relayed_frame, what="the relayed frame with its invocation")
        assert '"text":"hello bob"' in frame["body"]  # the frame, its JSON on one line (folded)
        invocation = frame["invocations"][0]
        assert FUNCTION in invocation["head"] and re.search(r"request [0-9a-f-]{36}", invocation["head"])
        assert re.search(r"\d+\.\d\d ms", invocation["head"])
        assert any('"route":"sendMessage"' in line and '"outcome":"delivered=1"' in line
                   for line in invocation["lines"])  # the function's own log line, tied to the frame
        assert any(i["kind"] == "out" and "reply" in i["head"] and '"type":"sent"' in i["body"] for i in items)
        assert any(i["kind"] == "event" and "$connect" in i["head"] and i["invocations"] for i in items)
        assert wait_until(browser, lambda d: rows(d)[alice][6] == "1 / 1", what="alice's frames counted")

        fill(browser, "send-message", '{"type":"notice","text":"from the page"}')
        browser.find_element("css selector", "#send button[type=submit]").click()
        assert json.loads(a.recv(timeout=15)) == {"type": "notice", "text": "from the page"}
        assert result_of(browser, "send-result") == "delivered to 1 of 1 recipient(s)"
        wait_until(browser, lambda d: any(i["kind"] == "out" and "@connections POST" in i["head"]
                                          and "from the page" in i["body"] for i in d.execute_script(CONVERSATION)),
                   what="the page's message in the conversation")

        bob_id = rows(browser)[bob][0]
        b.close()
        wait_until(browser, lambda d: bob not in rows(d), what="bob's connection gone")
        assert alice in rows(browser)
        assert not browser.find_elements("css selector", '#connection-table tr[data-id="%s"]' % bob_id)


def test_the_functions_panel_shows_environments_invocations_and_the_log_stream(emulator, browser):
    carol = unique("carol")
    open_page(browser, emulator)
    with client(emulator, carol) as c:
        c.send(json.dumps({"action": "whoami"}))
        assert json.loads(c.recv(timeout=15))["userId"] == carol
        cells = wait_until(browser, lambda d: next((r for r in d.execute_script(FUNCTIONS) if r[0] == FUNCTION), None),
                           what="the function's row")
        assert cells[1] == "python3.12" and "warm" in cells[2] and int(cells[3]) >= 3  # authorizer, $connect, whoami
        assert re.fullmatch(r"\d+\.\d\d ms", cells[5])  # the last cold start's Init Duration
        browser.find_element("css selector", '#function-table tr[data-function="%s"] button' % FUNCTION).click()
        c.send(json.dumps({"action": "whoami"}))
        c.recv(timeout=15)
        stream = wait_until(browser, lambda d: (lambda t: t if '"route":"whoami"' in t and "REPORT RequestId" in t
                                                else None)(d.find_element("id", "function-log").text),
                            what="the function's log stream")
        assert "START RequestId:" in stream and "Duration:" in stream


# -- actions ------------------------------------------------------------------------------------
def test_actions_from_the_page_do_what_the_cli_does(emulator, browser, tmp_path):
    dave, erin = unique("dave"), unique("erin")
    open_page(browser, emulator)
    with client(emulator, dave) as d, client(emulator, erin) as e:
        dave_id = row_of(browser, dave)[0]
        row_of(browser, erin)

        fill(browser, "broadcast-message", '{"type":"notice","text":"to everyone"}')
        browser.find_element("css selector", "#broadcast button").click()
        for ws in (d, e):
            assert json.loads(ws.recv(timeout=15)) == {"type": "notice", "text": "to everyone"}
        assert re.fullmatch(r"delivered to \d+ of \d+ recipient\(s\)", result_of(browser, "broadcast-result"))

        select_connection(browser, dave_id)
        browser.find_element("id", "disconnect").click()
        with pytest.raises(ConnectionClosed) as closed:
            d.recv(timeout=15)
        assert closed.value.rcvd.code == 1000
        assert result_of(browser, "send-result") == "Disconnected %s." % dave_id
        wait_until(browser, lambda drv: dave not in rows(drv), what="dave's connection gone")
        assert "(closed)" in browser.find_element("id", "conversation-title").text

        # Again, on the connection now gone: the page's line is the CLI's error line.
        browser.execute_script("document.getElementById('send-result').textContent = ''")
        browser.find_element("id", "disconnect").click()
        page_says = result_of(browser, "send-result")
        cli = emulator.cli("disconnect", dave_id)
        assert cli.returncode != 0 and cli.stderr.strip() == "error: " + page_says

    # Invoke: the authorizer's event answered with a policy, then an event the handler cannot take.
    browser.find_element("css selector", '#function-table tr[data-function="%s"] button' % FUNCTION).click()
    event = json.dumps({"type": "REQUEST", "methodArn": "arn:aws:execute-api:us-east-1:123456789012:x/dev/$connect",
                        "queryStringParameters": {"token": emulator.token("frank")}})
    fill(browser, "invoke-event", event)
    browser.find_element("css selector", "#invoke button").click()
    assert result_of(browser, "invoke-result").startswith("%s answered (request " % FUNCTION)
    assert '"principalId": "frank"' in browser.find_element("id", "invoke-payload").text
    errors_before = int(next(r for r in browser.execute_script(FUNCTIONS) if r[0] == FUNCTION)[4])
    fill(browser, "invoke-event", '{"not": "an API Gateway event"}')
    browser.find_element("css selector", "#invoke button").click()
    page_says = result_of(browser, "invoke-result")
    (tmp_path / "event.json").write_text('{"not": "an API Gateway event"}')
    cli = emulator.cli("invoke", FUNCTION, "--event", str(tmp_path / "event.json"))
    assert cli.returncode != 0 and cli.stderr.strip().splitlines()[-1] == "error: " + page_says
    assert "KeyError" in browser.find_element("id", "invoke-payload").text
    wait_until(browser, lambda drv: int(next(r for r in drv.execute_script(FUNCTIONS) if r[0] == FUNCTION)[4])
               > errors_before, what="the error counted")

    # The last event is kept per function: a new page offers it again.
    open_page(browser, emulator)
    wait_until(browser, lambda drv: drv.execute_script(FUNCTIONS), what="the functions")
    browser.find_element("css selector", '#function-table tr[data-function="%s"] button' % FUNCTION).click()
    assert browser.find_element("id", "invoke-event").get_attribute("value") == '{"not": "an API Gateway event"}'


def test_the_registry_is_shown_beside_the_live_connections_with_stale_rows_marked(emulator, browser):
    grace = unique("grace")
    stale = "Stale%sC0=" % unique("")[2:12]
    now = time.time()
    emulator.registry().put_connection(stale, "ghost", int(now * 1000), int(now) + 3600, emulator.endpoint)
    open_page(browser, emulator)
    with client(emulator, grace):
        grace_id = row_of(browser, grace)[0]

        def both(driver):
            shown = {cells[0]: cells for cells in driver.execute_script(REGISTRY)}
            return shown if grace_id in shown and stale in shown else None

        shown = wait_until(browser, both, timeout=20, what="the registry's rows")
        assert shown[grace_id][1] == grace and shown[grace_id][4] == "live"
        assert shown[stale][1] == "ghost" and shown[stale][4] == "stale"
        assert "stale" in browser.find_element("css selector", '#registry-table tr[data-id="%s"]' % stale) \
            .get_attribute("class")


# -- safe by default ----------------------------------------------------------------------------
def _request(port: int, method: str, path: str, headers: dict, body: bytes | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_requests_without_the_secret_from_a_foreign_host_or_origin_are_refused(emulator):
    port, token = page_port(emulator), secret(emulator)
    own = "127.0.0.1:%d" % port
    send = json.dumps({"connectionId": "AAAAAAAAAAAAAAA=", "message": "x"}).encode()
    before = emulator.output().count("page: refused")
    refused = [
        ("GET", "/", {"Host": own}, None),  # no secret
        ("GET", "/?token=" + token[:-1] + "x", {"Host": own}, None),  # a wrong one
        ("POST", "/api/send", {"Host": own, "Origin": "http://" + own, "Content-Type": "application/json"}, send),
        ("GET", "/?token=" + token, {"Host": "attacker.example:%d" % port}, None),  # DNS rebinding
        ("GET", "/static/view.js", {"Host": "attacker.example:%d" % port}, None),
        ("GET", "/?token=" + token, {"Host": "127.0.0.1:%d" % (port + 1)}, None),  # not the page's port
        ("POST", "/api/send", {"Host": own, "Origin": "http://attacker.example", "X-Wsctl-Token": token,
                               "Content-Type": "application/json"}, send),  # a foreign page
        ("POST", "/api/send", {"Host": own, "X-Wsctl-Token": token, "Content-Type": "text/plain"}, send),  # no Origin
    ]
    for method, path, headers, body in refused:
        assert _request(port, method, path, headers, body) == 403, (method, path, headers)
    assert _request(port, "GET", "/?token=" + token, {"Host": own}) == 200
    assert _request(port, "GET", "/?token=" + token, {"Host": "localhost:%d" % port}) == 200
    assert _request(port, "GET", "/static/view.css", {"Host": own}) == 200  # the same file for everyone

    live = "ws://%s/live?token=%s" % (own, token)
    for url, origin in ((live, "http://attacker.example"), (live, None),
                        ("ws://%s/live?token=wrong" % own, "http://" + own)):
        with pytest.raises(InvalidStatus) as refusal:
            connect(url, origin=origin, open_timeout=10).close()
        assert refusal.value.response.status_code == 403
    with connect(live, origin="http://" + own, open_timeout=10) as page:
        assert json.loads(page.recv(timeout=10))["type"] == "hello"

    lines = [line for line in emulator.output().splitlines() if "page: refused" in line][before:]
    assert len(lines) == len(refused) + 3  # one line per refusal, saying why
    assert sum("not this emulator's address (DNS rebinding?)" in line for line in lines) == 3
    assert sum("is not the page's own" in line for line in lines) == 2
    assert sum("no Origin" in line for line in lines) == 2
    assert sum("no secret or a wrong one" in line for line in lines) == 4
    assert token not in emulator.state_file.read_text()  # the secret lives in the printed URL only


# -- readable, usable with the keyboard, both schemes -------------------------------------------------
def _luminance(rgb: str) -> float:
    channels = [int(v) / 255 for v in re.findall(r"[\d.]+", rgb)[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(foreground: str, background: str) -> float:
    light, dark = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


COLOURS = """const panel = getComputedStyle(document.querySelector('.panel')).backgroundColor;
  const of = (selector) => getComputedStyle(document.querySelector(selector)).color;
  return {page: getComputedStyle(document.body).backgroundColor, panel,
          text: of('body'), muted: of('#where'), link: of('#connection-table button.link'),
          incoming: of('#frames li.in .dir'), outgoing: of('#frames li.out .dir'), ok: of('.invocation .status-ok')}"""


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_the_page_reads_in_a_narrow_window_with_the_keyboard_in_both_schemes(emulator, tmp_path, dark):
    henry = unique("henry")
    with chromium(tmp_path / "profile", width=420, height=900, dark=dark) as driver, client(emulator, henry) as h:
        open_page(driver, emulator)
        henry_id = row_of(driver, henry)[0]
        assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
        lefts = driver.execute_script("return [...document.querySelectorAll('main > section')]"
                                      ".map(s => Math.round(s.getBoundingClientRect().left))")
        assert len(set(lefts)) == 1  # one column

        # Tab from the top of the page to henry's connection, Enter to open it, and send with Ctrl-Enter.
        body = driver.find_element("tag name", "body")
        body.click()
        for _ in range(40):
            focused = driver.switch_to.active_element
            if focused.text == henry_id:
                break
            focused.send_keys(Keys.TAB)
        assert driver.switch_to.active_element.text == henry_id
        driver.switch_to.active_element.send_keys(Keys.ENTER)
        wait_until(driver, lambda d: henry_id in d.find_element("id", "conversation-title").text, what="the selection")
        area = driver.find_element("id", "send-message")
        area.clear()
        area.send_keys('{"text":"by keyboard"}', Keys.CONTROL, Keys.ENTER)
        assert json.loads(h.recv(timeout=15)) == {"text": "by keyboard"}
        h.send(json.dumps({"action": "whoami"}))
        h.recv(timeout=15)
        wait_until(driver, lambda d: d.find_elements("css selector", "#frames li.out .dir")
                   and d.find_elements("css selector", "#frames li.in .dir")
                   and d.find_elements("css selector", ".invocation .status-ok"), what="frames both ways")

        colours = driver.execute_script(COLOURS)
        assert (_luminance(colours["page"]) < 0.05) == dark
        for name in ("text", "muted", "link", "incoming", "outgoing", "ok"):
            assert _contrast(colours[name], colours["panel"]) >= 4.5, (name, colours)
        driver.save_screenshot(str(tmp_path / "narrow.png"))


# -- `wsctl local up` and the page -----------------------------------------------------------------------------
def test_open_starts_the_default_browser_on_the_page_and_no_page_serves_none(tmp_path):
    opener = tmp_path / "browser.sh"
    opened = tmp_path / "opened.txt"
    opener.write_text('#!/bin/sh\necho "$1" > %s\n' % opened)
    opener.chmod(0o755)
    instance = Emulator(tmp_path / "open", ["--auth", "none", "--open"], env={"BROWSER": str(opener)})
    try:
        deadline = time.monotonic() + 20
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert opened.read_text().strip() == page_url(instance)
    finally:
        instance.stop()
    quiet = Emulator(tmp_path / "none", ["--auth", "none", "--no-page"])
    try:
        assert "page:" not in quiet.output()
    finally:
        quiet.stop()


def test_a_page_port_in_use_is_one_line_naming_the_option(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        done = subprocess.run([sys.executable, "-m", "wsctl", "local", "up", "--port", "0", "--auth", "none",
                               "--page-port", str(taken.getsockname()[1])], cwd=ROOT, env=_clean_env(tmp_path),
                              capture_output=True, text=True, timeout=60)
    finally:
        taken.close()
    assert done.returncode != 0 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "already in use: pass --page-port with another port" in lines[0], done.stderr
