"""moto's management API made strict: it records each call on its own and answers 410, 403 and 429
where a test says so (moto's own double treats every id as connected and concatenates posts).
Outcomes that moto cannot produce honestly (a socket really gone, a throttling gateway) are
checked against the emulator instead."""

from urllib.parse import unquote


class StrictMoto:
    """Patches moto's management backend: records each call on its own, and answers
    410 for ids in `gone`, 403 for ids in `denied`, 429 `throttle[id]` times before succeeding.
    moto takes the id from the raw path; API Gateway percent-decodes it, so this does too."""

    def __init__(self, monkeypatch):
        from moto.apigatewaymanagementapi.models import ApiGatewayManagementApiBackend as Backend
        from moto.core.exceptions import JsonRESTError

        self.posts: list[tuple[str, str, bytes]] = []
        self.calls: list[tuple[str, str]] = []
        self.gone: set[str] = set()
        self.denied: set[str] = set()
        self.throttle: dict[str, int] = {}

        def error(code, status, message=""):
            exc = JsonRESTError(code, message)
            exc.code = status
            return exc

        def check(method, connection_id):
            self.calls.append((method, connection_id))
            if connection_id in self.gone:
                raise error("GoneException", 410)
            if connection_id in self.denied:
                raise error("AccessDeniedException", 403, "User: arn:aws:iam::123456789012:user/x is not authorized "
                                                          "to perform: execute-api:ManageConnections")
            if self.throttle.get(connection_id):
                self.throttle[connection_id] -= 1
                raise error("LimitExceededException", 429)

        original_get, original_delete = Backend.get_connection, Backend.delete_connection

        def post(backend, data, connection_id):
            connection_id = unquote(connection_id)
            check("POST", connection_id)
            data = data if isinstance(data, bytes) else data.encode()
            self.posts.append((backend.region_name, connection_id, data))
            backend.connections[connection_id].data += data  # what moto's own post does, minus its inner GET

        def get(backend, connection_id):
            connection_id = unquote(connection_id)
            check("GET", connection_id)
            return original_get(backend, connection_id)

        def delete(backend, connection_id):
            connection_id = unquote(connection_id)
            check("DELETE", connection_id)
            self.gone.add(connection_id)  # as on AWS: a deleted connection is gone from then on
            return original_delete(backend, connection_id)

        monkeypatch.setattr(Backend, "post_to_connection", post)
        monkeypatch.setattr(Backend, "get_connection", get)
        monkeypatch.setattr(Backend, "delete_connection", delete)
