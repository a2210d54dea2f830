"""moto's DynamoDB/SSM server for the emulator, run as `python -m wsctl.local.motoserver PORT`.

moto's own `moto_server` answers HTTP/1.0 and closes every connection, so a
busy handler would open (and leave in TIME_WAIT) one TCP connection per call;
this serves the same application with HTTP/1.1 keep-alive and no access log.
It runs in a process of its own so its CPU use never stalls the gateway.
"""

import signal
import sys
import threading
from bisect import bisect_left

from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

from ..exitstatus import ExitStatus


class KeepAliveHandler(MotoRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_request(self, *args, **kwargs):
        pass


def keep_items_sorted() -> None:
    """moto 5 answers every Query and Scan page from `Table.all_items()`, which lists and sorts
    the whole table, comparing keys in Python: about 9 ms of CPU per query once a registry holds
    800 items, so the emulator slowed as stale entries piled up (churn soak: 38 lifetimes/s
    falling to 17/s), and a paginated scan re-sorted the table for every page.

    Here each table keeps its sorted list and every put and delete updates it in place (binary
    search, moto's own sort key). Batch writes, transactions and updates that create an item all
    go through put_item and delete_item; updates in place keep an item's key and place. Writes
    and the list change together under one lock, so two writers of one key cannot leave the
    list holding the loser."""
    sort_all, put_item, delete_item = Table.all_items, Table.put_item, Table.delete_item
    lock = threading.RLock()

    def sort_key(item):  # moto's all_items key
        return (item.hash_key, item.range_key) if item.range_key else item.hash_key

    def position(listing, item):
        """(index, whether an item with that key is there)."""
        key = sort_key(item)
        index = bisect_left(listing, key, key=sort_key)
        return index, index < len(listing) and sort_key(listing[index]) == key

    def all_items(self):
        with lock:
            listing = self.__dict__.get("_wsctl_sorted")
            if listing is None:
                listing = self._wsctl_sorted = sort_all(self)
            return list(listing)  # callers get their own list, as before

    def put(self, *args, **kwargs):
        with lock:
            item = put_item(self, *args, **kwargs)  # raises (condition failed...): nothing changed
            listing = self.__dict__.get("_wsctl_sorted")
            if listing is not None:
                index, present = position(listing, item)
                if present:
                    listing[index] = item
                else:
                    listing.insert(index, item)
            return item

    def delete(self, *args, **kwargs):
        with lock:
            item = delete_item(self, *args, **kwargs)
            listing = self.__dict__.get("_wsctl_sorted")
            if item is not None and listing is not None:
                index, present = position(listing, item)
                if present:
                    del listing[index]
            return item

    Table.all_items, Table.put_item, Table.delete_item = all_items, put, delete


def serve(host: str, port: int) -> None:
    run_simple(host, port, DomainDispatcherApplication(create_backend_app), threaded=True,
               request_handler=KeepAliveHandler)


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    keep_items_sorted()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(ExitStatus.OK))  # stopped by the emulator, as planned
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the whole group: the gateway stops us
    serve(host, port)


if __name__ == "__main__":
    main()
