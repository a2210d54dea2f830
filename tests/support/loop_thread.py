"""A loopback server run by its own event loop in a thread, for tests that need a peer in process
(tests/support/scripted_http.py, forward_proxy.py). A subclass says how to serve and what to end."""

import asyncio
import threading


class LoopThread:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.port = None

    def __enter__(self):
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def serve(self):
        """Start listening on 127.0.0.1 (any port); the asyncio server."""
        raise NotImplementedError

    def end(self) -> None:
        """Abort what is still open, when the loop has stopped."""

    def _run(self):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(self.serve())
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()
        server.close()
        self.end()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()
