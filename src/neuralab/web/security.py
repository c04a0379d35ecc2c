"""Who may talk to the app, and how: the host names it answers to, requests made by other
sites' pages refused, the content types each endpoint takes, and the headers every answer
carries.

A page on another site can make the user's browser send requests here. "Simple" POSTs
(text/plain, forms) go out without the browser asking first, but carry an Origin header
naming the page's site, and modern browsers add Sec-Fetch-Site (same-origin, same-site,
cross-site, none). DNS rebinding goes further: the attacker points a name they own at this
machine, and the browser then counts their page as this app's origin; the Host header still
carries their name. Hence (``RequestGuard``):

- every request must name a host this server answers to (``allowed_hosts``): the loopback
  names, and when the app is exposed, this machine's names and addresses plus those the user
  lists (``neuralab serve --allow-host``);
- a request that changes something or costs work (any method but GET, HEAD, OPTIONS) must
  come from this very origin when it says where it comes from (Origin);
- a request made by another site's page (Sec-Fetch-Site cross-site or same-site: another
  port of localhost is the same site) is refused, except the user following a link to a page;
- each POST endpoint names the content types it takes (``accepts``): the pages send
  application/json or a picture's bytes, types another site cannot send without asking the
  browser first (a CORS preflight), which this app never grants.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

LOOPBACK = ("localhost", "127.0.0.1", "::1")
WILDCARD = ("0.0.0.0", "::", "")   # bind addresses meaning "every interface"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
OTHER_SITE = ("cross-site", "same-site")
DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s:/@\[\]]+)(?::(\d{1,5}))?")

CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# What every answer carries (``SecurityHeaders``), the refusals made outside the app's routes too.
HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "content-security-policy": CSP,
           "cache-control": "no-store"}


def normal_host(name: str) -> str:
    """A host as the checks compare it: lower case, no IPv6 brackets, zone or final dot; an
    address in its shortest form, and an IPv4 address written as IPv6 (::ffff:127.0.0.1, how a
    server listening on :: sees its IPv4 clients) as IPv4, where ipaddress would call 127.0.0.1
    so written no loopback and count it as another client."""
    name = name.strip().lower().strip("[]").split("%")[0].rstrip(".")
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name
    return str(getattr(address, "ipv4_mapped", None) or address)


def split_host(value: str) -> tuple[str, int | None] | None:
    """A Host header (or an Origin's netloc) -> (normal host, port), None when malformed."""
    m = _HOST.fullmatch(value.strip())
    if m is None or (m[2] and not 0 < int(m[2]) < 65536):  # a port no server can listen on
        return None
    return normal_host(m[1]), int(m[2]) if m[2] else None


def is_loopback(host: str) -> bool:
    if normal_host(host) == "localhost":
        return True
    try:
        return ipaddress.ip_address(normal_host(host)).is_loopback
    except ValueError:
        return False


def machine_names() -> set[str]:
    """This machine's names and addresses: host name, FQDN, what they resolve to, and the
    source address of the default routes (a UDP connect picks it; no packet is sent)."""
    import socket

    names = {socket.gethostname(), socket.getfqdn()}
    for name in list(names):
        try:
            canonical, aliases, addresses = socket.gethostbyname_ex(name)
            names |= {canonical, *aliases, *addresses}
        except OSError:
            pass
        try:
            names |= {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
        except OSError:
            pass
    # documentation addresses (RFC 5737, RFC 3849): routable-looking, never answered
    for family, target in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect((target, 9))
                names.add(probe.getsockname()[0])
        except OSError:
            pass
    return {normal_host(n) for n in names if n and normal_host(n) not in WILDCARD}


def listen_address(host: str) -> str:
    """A bind address (`neuralab serve --host`) as the system reads it, so that "this machine
    only", "every interface" and the Host names answered are decided on the address listened
    on: an address in its standard form (``0::0`` is ``::``, as WILDCARD spells it, ``fd00:0::2``
    is ``fd00::2``, as browsers send it), an IPv4 address in one of inet_aton's short forms,
    which getaddrinfo binds as such (``0``, ``127.1``, ``2130706433``), as its four numbers; a
    name as it is."""
    import socket

    name = host.strip().strip("[]")
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    try:
        return socket.inet_ntoa(socket.inet_aton(name))
    except (OSError, ValueError):  # ValueError: a NUL in the text
        return name


def _names_of(bind: str) -> set[str]:
    """A bind address or name, the addresses a name resolves to, and, where none of them is
    loopback, this machine's names that resolve to one of them. Loopback gains no name: the
    machine's (which /etc/hosts often gives 127.0.0.1 or 127.0.1.1) would make the app count
    as exposed, and lose its training form, though no other machine can reach it."""
    import socket

    def resolved(name: str) -> set[str]:
        try:
            return {normal_host(str(info[4][0])) for info in socket.getaddrinfo(name, None)}
        except OSError:
            return set()

    names = {normal_host(bind)} | resolved(bind)
    if not any(is_loopback(n) for n in names):
        names |= {normal_host(n) for n in {socket.gethostname(), socket.getfqdn()} if n and resolved(n) & names}
    return names


def allowed_hosts(bind: str = "127.0.0.1", extra: Iterable[str] = ()) -> frozenset[str]:
    """The Host header values to answer for a server bound to ``bind``: the loopback names;
    for a wildcard bind also this machine's names and addresses, for another address or name
    that one (a loopback one too: 127.0.0.2 is reached by no other name) and the names that
    resolve to it; and the ``extra`` names the user lists."""
    bind = listen_address(bind)
    hosts = set(LOOPBACK)
    if bind in WILDCARD:
        hosts |= machine_names()
    else:
        hosts |= _names_of(bind)
    hosts |= {normal_host(e) for e in extra}
    return frozenset(hosts)


class RequestGuard:
    """ASGI middleware: refuse, with a one-line JSON reason, requests naming a foreign host
    (400) and requests made by other sites (403), before any endpoint runs."""

    def __init__(self, app, hosts: Iterable[str]):
        self.app = app
        self.hosts = frozenset(normal_host(h) for h in hosts)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            refused = self.refusal(scope)
            if refused is not None:
                status, reason = refused
                return await JSONResponse({"error": reason}, status_code=status)(scope, receive, send)
        await self.app(scope, receive, send)

    def refusal(self, scope) -> tuple[int, str] | None:
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        here = split_host(host)
        if here is None or here[0] not in self.hosts:
            return 400, (f"Host {host[:100]!r}: not a name this server answers to "
                         "(`neuralab serve --allow-host NAME` adds one)")
        unsafe = scope["method"] not in SAFE_METHODS
        site = headers.get("sec-fetch-site", "")
        if site in OTHER_SITE and (unsafe or headers.get("sec-fetch-mode") != "navigate"):
            return 403, f"refused: the request comes from another site (Sec-Fetch-Site {site}); use the app's own pages"
        origin = headers.get("origin")
        if unsafe and origin is not None and not same_origin(origin, scope.get("scheme", "http"), here):
            return 403, f"refused: the request comes from another site (Origin {origin[:100]!r}); use the app's own pages"
        return None


def same_origin(origin: str, scheme: str, here: tuple[str, int | None]) -> bool:
    """Whether an Origin header names this server: same scheme, host and port as the request."""
    parts = urlsplit(origin)
    there = split_host(parts.netloc) if parts.scheme in DEFAULT_PORTS and not parts.path else None
    if there is None or parts.scheme != scheme:
        return False
    default = DEFAULT_PORTS[scheme]
    return there[0] == here[0] and (there[1] or default) == (here[1] or default)


def accepts(*types: str):
    """Endpoint decorator: a body whose Content-Type is not one of ``types`` is refused with
    415 ("image/*" stands for every image type)."""
    def decorate(endpoint):
        @functools.wraps(endpoint)
        async def checked(request):
            given = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if not any(given == t or (t.endswith("/*") and given.startswith(t[:-1])) for t in types):
                raise HTTPException(415, f"Content-Type {given or '(none)'}: {request.url.path} takes "
                                         f"{' or '.join(types)}")
            return await endpoint(request)
        return checked
    return decorate


class SecurityHeaders:
    """Add the CSP and friends to every response that does not set its own CSP."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [(k.encode(), v.encode()) for k, v in HEADERS.items() if k.encode() not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
