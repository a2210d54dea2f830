"""moto's DynamoDB/SSM server for the emulator, run as `python -m wsctl.local.motoserver PORT`.

moto's own `moto_server` answers HTTP/1.0 and closes every connection, so a
busy handler would open (and leave in TIME_WAIT) one TCP connection per call;
this serves the same application with HTTP/1.1 keep-alive and no access log.
It runs in a process of its own so its CPU use never stalls the gateway.
"""

import signal
import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class KeepAliveHandler(MotoRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_request(self, *args, **kwargs):
        pass


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the whole group: the gateway stops us
    run_simple(host, port, DomainDispatcherApplication(create_backend_app), threaded=True,
               request_handler=KeepAliveHandler)


if __name__ == "__main__":
    main()
