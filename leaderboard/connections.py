"""The web server's bounds on connections (``zoo serve``): what one reader may hold of the server's open files.

uvicorn closes a connection only when it is idle after a response (its keep-alive); one that never sends a whole
request (nothing at all, or a request's headers a byte at a time) stays open for good, each an open file of the
server. A reader with no token held the server's every descriptor so (a few hundred idle TCP connections under
the common limit of 1024 open files): the board answered no one, and no upload could be written, until they let go.

So a connection must send a request's headers whole within :data:`HEADER_TIMEOUT_S` of opening, or of its previous
response's end plus the keep-alive (a reader's think time), else it is closed; and one client address (an IPv6
address's /64 network, which one host holds whole) holds at most :data:`MAX_CONNECTIONS_PER_CLIENT` connections at
once, a connection past them closed as it opens. A browser opens at most 6 to a host. The host's own connections
(:data:`UNCAPPED`: a reverse proxy in front of the server on its host, whose connections all come from there, the
operator's tools) are not counted. Many addresses together can still hold many connections: an operator facing that
puts a reverse proxy in front (SECURITY.md).
"""
from __future__ import annotations

import ipaddress
from typing import Dict, Optional

#: seconds a connection has to send a request's headers whole (after a response: after the keep-alive too)
HEADER_TIMEOUT_S = 10.0
#: connections one client address (an IPv6 /64) may hold open at once
MAX_CONNECTIONS_PER_CLIENT = 64
#: the addresses whose connections are not counted: the host's own (loopback)
UNCAPPED = ("127.0.0.0/8", "::1/128")
#: seconds an idle connection is kept after a response: beyond a reader's think time, so that a reused connection is
#: rarely closed under a request
KEEP_ALIVE_S = 30


def server_config(app, **options):
    """The ``uvicorn.Config`` of ``zoo serve`` for ``app``: the keep-alive and the bounds of this module."""
    import uvicorn

    return uvicorn.Config(app, log_level="warning", timeout_keep_alive=KEEP_ALIVE_S, http=bounded_protocol(),
                          **options)


def client_key(host: Optional[str]) -> Optional[str]:
    """Whose connection it is, for the count of connections per client: the IPv4 address, or the /64 network of an
    IPv6 one (its host picks the rest); None for one not counted (an address of :data:`UNCAPPED`, a unix socket)."""
    if not host:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in ipaddress.ip_network(network) for network in UNCAPPED
           if ipaddress.ip_network(network).version == address.version):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def bounded_protocol(base=None, header_timeout_s: Optional[float] = None, per_client: Optional[int] = None):
    """uvicorn's HTTP protocol (``base``; default the one it picks itself, httptools' or h11's) with the bounds of
    this module (default :data:`HEADER_TIMEOUT_S`, :data:`MAX_CONNECTIONS_PER_CLIENT`), for
    ``uvicorn.Config(http=...)``; each call has its own count of connections per client."""
    if base is None:
        from uvicorn.protocols.http.auto import AutoHTTPProtocol as base
    header_timeout_s = HEADER_TIMEOUT_S if header_timeout_s is None else header_timeout_s
    per_client = MAX_CONNECTIONS_PER_CLIENT if per_client is None else per_client
    open_by_client: Dict[Optional[str], int] = {}

    class BoundedProtocol(base):
        _counted: Optional[str] = None
        _header_timer = None
        _waiting_cycle = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            key = client_key(self.client[0] if self.client else None)
            if key is not None:
                if open_by_client.get(key, 0) >= per_client:
                    transport.abort()  # nothing was received, nothing to answer
                    return
                open_by_client[key] = open_by_client.get(key, 0) + 1
                self._counted = key
            self._arm(header_timeout_s)

        def connection_lost(self, exc) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            if self._counted is not None:
                left = open_by_client[self._counted] - 1
                if left:
                    open_by_client[self._counted] = left
                else:
                    del open_by_client[self._counted]
                self._counted = None
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm(self.timeout_keep_alive + header_timeout_s)

        def _arm(self, delay: float) -> None:
            """Close the connection in ``delay`` s unless a request's headers have come whole by then (a new request
            cycle began: uvicorn starts one when they have)."""
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._waiting_cycle = self.cycle
            self._header_timer = self.loop.call_later(delay, self._headers_late)

        def _headers_late(self) -> None:
            self._header_timer = None
            if self.cycle is self._waiting_cycle and not self.transport.is_closing():
                self.transport.close()

    return BoundedProtocol
