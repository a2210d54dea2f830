"""The page's server: its files, its live socket and its actions, on a port of its own.

The live socket (/live) is how the page learns what happens: on arrival a page starts the
journal (wsctl/local/observe.py) and gets every half second what changed: connections
opened, closed or active (from the gateway's own table), functions and their environments
(from the Lambda service), and the journal's entries for the connection and the function it
has selected (it asks for their history when it selects them). The registry is read only
while the page shows it, at most every REGISTRY_EVERY_S. Actions are POSTs to /api/ACTION,
each running the CLI's service (actions.py). Every request passes guard.refusal first.
"""

import asyncio
import decimal
import json
import time
from importlib import resources

from aiohttp import WSMsgType, web

from . import guard, snapshot
from .actions import Actions

TICK_S = 0.5  # how often a page hears what changed ("within a second")
PER_TICK = 200  # entries of the chosen connection, and of the chosen function, a page gets a tick at most
REGISTRY_EVERY_S = 2.0  # at most one registry read per this many seconds per page
MAX_REQUEST = 512 * 1024  # an action's body: a message (128 KB) or an event, as JSON
STATIC = resources.files(__package__) / "static"


class Watcher:
    """One open page: what it has selected and what it has been sent."""

    def __init__(self, ws):
        self.ws = ws
        self.connection = None  # the selected connection's id
        self.function = None  # the selected function's name
        self.seq = 0  # the last journal entry considered
        self.sent: dict = {}  # connection id -> (last active, in, out) as last sent
        self.functions = None  # the function rows as last sent
        self.registry_open = False
        self.registry_due = False  # a read was asked for, or the set of connections changed
        self.registry_at = 0.0
        self.registry_task = None
        self.members: frozenset = frozenset()


class ViewServer:
    def __init__(self, journal, gateway, service, about: dict, sock, log, names: tuple = ()):
        """`about`: the emulator's name, stage, URLs, routes and authorizer (shown in the header);
        `sock`: the bound listening socket; `log(line)`: the emulator's log; `names`: host names
        besides addresses and localhost that the Host header may carry (--host)."""
        self.journal = journal
        self.gateway = gateway
        self.service = service
        self.about = about
        self.sock = sock
        self.log = log
        self.names = tuple(names)
        self.port = sock.getsockname()[1]
        self.secret = guard.new_secret()
        self.actions = Actions(about["name"])
        self.last_events: dict = {}  # function -> the event last invoked from the page
        self.watchers: set = set()
        self.runner = None

    def url(self, host: str) -> str:
        shown = "[%s]" % host if ":" in host else host
        return "http://%s:%d/?token=%s" % (shown, self.port, self.secret)

    # -- the application -----------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST, middlewares=[self._guard])
        app.router.add_get("/", self.index)
        app.router.add_get("/live", self.live)
        app.router.add_post("/api/{action}", self.action)
        app.router.add_static("/static/", STATIC, append_version=False)
        app.on_response_prepare.append(_safety_headers)
        return app

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app(), handle_signals=False, access_log=None)
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()

    async def close(self) -> None:
        for watcher in list(self.watchers):
            await watcher.ws.close()
        if self.runner is not None:
            await self.runner.cleanup()

    @web.middleware
    async def _guard(self, request: web.Request, handler):
        why = guard.refusal(request.method, request.path, request.headers, request.query, self.secret, self.port,
                            self.names)
        if why is not None:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            self.log("page: refused %s %s from %s: %s" % (request.method, request.path,
                                                           peer[0] if peer else "?", why))
            return web.Response(status=403, text="Forbidden: %s\n" % why)
        return await handler(request)

    async def index(self, request):
        return web.Response(body=(STATIC / "index.html").read_bytes(), content_type="text/html", charset="utf-8")

    # -- the live socket -----------------------------------------------------------------------
    async def live(self, request):
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=64 * 1024)
        await ws.prepare(request)
        watcher = Watcher(ws)
        self.journal.watch()
        self.watchers.add(watcher)
        ticking = asyncio.create_task(self._ticks(watcher))
        try:
            await ws.send_json({"type": "hello", "about": self.about, "since": self.journal.since,
                                "capacity": self.journal.capacity})
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    await self._heard(watcher, message.data)
        finally:
            ticking.cancel()
            self.watchers.discard(watcher)
            self.journal.unwatch()
        return ws

    async def _heard(self, watcher: Watcher, text: str) -> None:
        try:
            said = json.loads(text)
        except ValueError:
            return
        if not isinstance(said, dict):
            return
        if "select" in said and isinstance(said["select"], dict):
            chosen = said["select"]
            watcher.connection = chosen.get("connection") if isinstance(chosen.get("connection"), str) else None
            watcher.function = chosen.get("function") if isinstance(chosen.get("function"), str) else None
            history = [snapshot.entry_json(e) for e in snapshot.history(self.journal.entries, watcher.connection,
                                                                        watcher.function)]
            watcher.seq = self.journal.seq
            await watcher.ws.send_str(json.dumps({"type": "history", "connection": watcher.connection,
                                                  "function": watcher.function, "entries": history}))
        if said.get("registry") in ("open", "refresh"):
            watcher.registry_open = watcher.registry_due = True
        elif said.get("registry") == "closed":
            watcher.registry_open = False

    async def _ticks(self, watcher: Watcher) -> None:
        try:
            while not watcher.ws.closed:
                message = self._changes(watcher)
                if message:
                    await watcher.ws.send_str(json.dumps(message))
                await asyncio.sleep(TICK_S)
        except (ConnectionError, RuntimeError):
            pass  # the page went away mid-send

    def _changes(self, watcher: Watcher) -> dict | None:
        journal, connections = self.journal, self.gateway.connections
        message = {}
        changed, gone = snapshot.connection_changes(connections, journal.counts, watcher.sent)
        if changed or gone:
            message["connections"] = {"upsert": changed, "remove": gone}
        functions = snapshot.function_rows(self.service.pools, self.about["routes"], self.about["authorizer"],
                                           journal.errors, journal.last_init)
        for row in functions:
            row["lastEvent"] = self.last_events.get(row["name"])
        if functions != watcher.functions:
            message["functions"] = watcher.functions = functions
        if watcher.connection is not None or watcher.function is not None:
            fresh = journal.after(watcher.seq)
            conversation = snapshot.capped([e for e in fresh if e.get("conn") == watcher.connection], PER_TICK,
                                           connection_id=watcher.connection)
            log = snapshot.capped([e for e in fresh if e.get("fn") == watcher.function
                                   and e.get("conn") != watcher.connection], PER_TICK, function=watcher.function)
            entries = [snapshot.entry_json(e) for e in sorted(conversation + log, key=lambda e: e["seq"])]
            if entries:
                message["entries"] = entries
        watcher.seq = journal.seq
        self._registry(watcher, connections)
        if not message:
            return None
        message.update(type="tick", t=int(time.time() * 1000))
        return message

    def _registry(self, watcher: Watcher, connections: dict) -> None:
        """Read the registry in the background while the page shows it, when asked or when the set of
        connections changed (a $connect or $disconnect writes it)."""
        if not watcher.registry_open:
            return
        members = frozenset(connections)
        if members != watcher.members:
            watcher.members = members
            watcher.registry_due = True
        if not watcher.registry_due or watcher.registry_task is not None \
                or time.monotonic() - watcher.registry_at < REGISTRY_EVERY_S:
            return
        watcher.registry_due = False
        watcher.registry_at = time.monotonic()
        watcher.registry_task = asyncio.create_task(self._send_registry(watcher))

    async def _send_registry(self, watcher: Watcher) -> None:
        try:
            answer = await self.actions.run(Actions.registry)
            for row in answer.get("rows") or ():
                row["live"] = row["connectionId"] in self.gateway.connections
            if not watcher.ws.closed:
                await watcher.ws.send_str(json.dumps(dict(answer, type="registry"), default=_plain))
        except (ConnectionError, RuntimeError):
            pass
        finally:
            watcher.registry_task = None

    # -- actions -------------------------------------------------------------------------------
    async def action(self, request):
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return web.json_response({"ok": False, "message": "send a JSON object"}, status=400)

        def text(name: str, required: bool = True) -> str | None:
            value = body.get(name)
            if value is None and not required:
                return None
            if not isinstance(value, str) or (required and not value):
                raise ValueError("%s: give a string" % name)
            return value

        name = request.match_info["action"]
        try:
            if name == "send":
                answer = await self.actions.run(Actions.send, text("connectionId"), text("message"))
            elif name == "broadcast":
                answer = await self.actions.run(Actions.broadcast, text("message"))
            elif name == "disconnect":
                answer = await self.actions.run(Actions.disconnect, text("connectionId"))
            elif name == "invoke":
                function, event = text("function"), text("event", required=False) or "{}"
                if function not in self.service.pools:
                    raise ValueError("no function %r here (%s)" % (function, ", ".join(self.service.pools)))
                self.last_events[function] = event
                answer = await self.actions.run(Actions.invoke, function, event)
            else:
                return web.json_response({"ok": False, "message": "no action %r" % name}, status=404)
        except ValueError as error:
            return web.json_response({"ok": False, "message": str(error)}, status=400)
        return web.json_response(answer)


def _plain(value):
    """What json cannot write in a registry row: DynamoDB's numbers (Decimal) as numbers, the rest as text."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


async def _safety_headers(request, response) -> None:
    # The live socket's ws:// origin by name: only a Host the guard let through reaches a page.
    host = request.headers.get("Host", "")
    socket = " ws://" + host if response.status != 403 else ""
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'%s; base-uri 'none'; form-action 'none'; frame-ancestors 'none'" % socket)
    response.headers["Referrer-Policy"] = "no-referrer"  # the page's URL carries the secret
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"
    response.headers.popall("Server", None)


__all__ = ["ViewServer"]
