"""Who may use the page (pure): every request's Host, Origin and secret, checked before routing.

Any web page the user visits can make the browser send requests to 127.0.0.1, and a DNS
rebinding page can even read the answers: its host name comes to resolve to 127.0.0.1, and
only the Host header still shows where the page came from. So (see
/work/shared/reference/formats-and-operators.md §5, Jupyter's and Vite's checks):

- Host must name this machine by address (any IP literal: a rebinding attacker has a name,
  not an address), `localhost` or `*.localhost`, or the name given with --host, and the
  page's port;
- an Origin, when the browser sends one, must be the page's own (http://HOST:PORT), and the
  live socket and every action must carry one (browsers always send it there);
- the page, its live socket and its actions need the secret that only the printed URL
  carries: `?token=` on the page and the socket, the X-Wsctl-Token header on actions (a
  custom header: a cross-site request would need a preflight, which is never answered).
  The page's static files (script, style) are the same for everyone and need none.
"""

import hmac
import ipaddress
import secrets

TOKEN_HEADER = "X-Wsctl-Token"


def new_secret() -> str:
    return secrets.token_urlsafe(24)


def split_host(host: str) -> tuple[str, int | None] | None:
    """'127.0.0.1:8080' -> ('127.0.0.1', 8080), '[::1]:80' -> ('::1', 80), 'localhost' -> ('localhost', None);
    None for what is not a host."""
    if host.startswith("["):
        name, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else None
    else:
        name, colon, port_text = host.rpartition(":")
        if not colon:
            name, port_text = host, None
        if ":" in name:
            return None
    if port_text is None:
        return name.lower(), None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return name.lower(), int(port_text)


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(host: str | None, port: int, names: tuple = ()) -> bool:
    """The Host header names this machine, by address or as localhost (or a --host name), on `port`."""
    parts = split_host(host or "")
    if parts is None:
        return False
    name, given_port = parts
    if (given_port or 80) != port:
        return False
    return _is_address(name) or name == "localhost" or name.endswith(".localhost") or name in names


def refusal(method: str, path: str, headers, query, secret: str, port: int, names: tuple = ()) -> str | None:
    """Why this request is refused (one line for the log), or None. `headers` and `query` are
    mappings (headers case-insensitive)."""
    host = headers.get("Host")
    if not host_allowed(host, port, names):
        return "Host %r is not this emulator's address (DNS rebinding?)" % (host or "")
    origin = headers.get("Origin")
    own = "http://" + host
    if origin is not None and origin != own:
        return "Origin %r is not the page's own (%s)" % (origin, own)
    if path.startswith("/static/") and method in ("GET", "HEAD"):
        return None
    live = path == "/live"
    if origin is None and (live or method not in ("GET", "HEAD")):
        return "no Origin: the live view and actions are for the page only"
    given = headers.get(TOKEN_HEADER) if path.startswith("/api/") else query.get("token")
    if not given or not hmac.compare_digest(given.encode(), secret.encode()):
        return "no secret or a wrong one (open the URL `wsctl local up` printed)"
    return None


__all__ = ["TOKEN_HEADER", "host_allowed", "new_secret", "refusal", "split_host"]
