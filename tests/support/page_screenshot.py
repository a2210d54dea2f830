"""The README's picture of the live page: a real emulator, three real clients, a relay, a message
from the page, a stale registry row, the function's log stream, photographed in headless Chromium.

    python tests/support/page_screenshot.py docs/page.png [--dark]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from websockets.sync.client import connect  # noqa: E402

from support.browser import chromium, page_url, wait_until  # noqa: E402
from support.emulator_fixtures import Emulator  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--dark", action="store_true")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1250)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="wsctl-page-shot-"))
    emulator = Emulator(home / "emulator", ["--allow-client-broadcast"], stack="chat")
    try:
        url = page_url(emulator)
        now = time.time()
        emulator.registry().put_connection("Zx3kQ9vLmC0eHw8=", "mallory", int((now - 3600) * 1000), int(now) + 3600,
                                           emulator.endpoint)
        with chromium(home / "profile", width=args.width, height=args.height, dark=args.dark) as driver:
            driver.get(url)
            wait_until(driver, lambda d: d.find_element("id", "status").text.startswith("live"))
            clients = {user: connect(emulator.url_for(user), compression=None) for user in ("alice", "bob", "carol")}
            for ws in clients.values():
                ws.__enter__()
            try:
                wait_until(driver, lambda d: d.find_element("id", "connection-count").text == "(3)")
                driver.find_element("css selector", "#connection-table tbody tr button").send_keys("\n")
                alice, bob = clients["alice"], clients["bob"]
                alice.send(json.dumps({"action": "sendMessage", "targetUserId": "bob", "text": "lunch at noon?"}))
                bob.recv(timeout=15)
                alice.recv(timeout=15)
                alice.send(json.dumps({"action": "join", "room": "lobby"}))
                alice.recv(timeout=15)
                driver.find_element("css selector", "#send button[type=submit]").click()
                alice.recv(timeout=15)
                driver.find_element("css selector", "#function-table tbody tr button").click()
                clients["carol"].send(json.dumps({"action": "whoami"}))
                clients["carol"].recv(timeout=15)
                wait_until(driver, lambda d: "mallory" in d.find_element("id", "registry-table").text)
                time.sleep(1.5)
                driver.execute_script("""
                    const frame = document.querySelector('#frames li.in');
                    frame.querySelector('details').open = true;
                    const list = document.getElementById('frames');
                    list.scrollTop = frame.offsetTop - list.offsetTop - 8;
                    window.scrollTo(0, 0);""")
                driver.save_screenshot(args.out)
            finally:
                for ws in clients.values():
                    ws.__exit__(None, None, None)
    finally:
        emulator.stop()
    print("wrote %s" % args.out)


if __name__ == "__main__":
    main()
