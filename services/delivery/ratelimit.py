"""Rate limits on sign-up, confirmation and the public search page: sliding windows per client address (and
per email address for sign-up).

The counters live in this process's memory, so with N delivery replicas behind a load balancer the effective
limit is up to N times the configured one. That is deliberate: the limits exist to stop one client from
mail-bombing an address or hammering the database, which a per-replica bound already does, and a shared store
(the database) would put a write on the hot path of every refused request."""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from podbrief_delivery.addresses import mailbox_key
from podbrief_delivery.settings import RateLimitSettings
from starlette.requests import Request


class SlidingWindow:
    """At most `limit` hits per `window_s` seconds for each key. The least recently used keys are forgotten
    beyond `max_keys`, so a flood of distinct addresses cannot grow memory without bound."""

    def __init__(
        self, limit: int, window_s: float, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def hit(self, key: str) -> float | None:
        """Count one request for `key`; None when allowed, else the seconds until it would be."""
        now = self.clock()
        hits = self._hits.get(key)
        if hits is None:
            hits = self._hits[key] = deque()
        self._hits.move_to_end(key)
        horizon = now - self.window_s
        while hits and hits[0] <= horizon:
            hits.popleft()
        if len(hits) >= self.limit:
            return max(hits[0] + self.window_s - now, 0.001)
        hits.append(now)
        while len(self._hits) > self.max_keys:
            self._hits.popitem(last=False)
        return None


def client_address(peer: str | None, forwarded_for: str | None, trusted: tuple[str, ...]) -> str:
    """The client's address: the socket peer, unless the peer is a trusted proxy, in which case the rightmost
    X-Forwarded-For entry that is not itself a trusted proxy. Entries left of that are client-supplied and
    could be anything, so they are never used."""
    peer = peer or "unknown"
    if not trusted or not forwarded_for:
        return peer
    nets = [ipaddress.ip_network(t, strict=False) for t in trusted]

    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip.version == n.version and ip in n for n in nets)

    if not is_trusted(peer):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                # A trusted proxy passed on something that is not an address; key on it as given, bounded.
                return hop[:64]
    return hops[0] if hops else peer


class SignupLimits:
    def __init__(self, settings: RateLimitSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        w = settings.window_s
        self.signup_ip = SlidingWindow(settings.signup_per_ip, w, clock=clock)
        self.signup_email = SlidingWindow(settings.signup_per_email, w, clock=clock)
        self.confirm_ip = SlidingWindow(settings.confirm_per_ip, w, clock=clock)
        self.search_ip = SlidingWindow(settings.search_per_ip, w, clock=clock)

    def client(self, request: Request) -> str:
        peer = request.client.host if request.client else None
        return client_address(peer, request.headers.get("x-forwarded-for"), self.settings.trusted_proxies)

    def signup(self, client: str, email: str) -> float | None:
        if not self.settings.enabled:
            return None
        wait = self.signup_ip.hit(client)
        if wait is not None:
            return wait
        # One mailbox, one count, however it is spelled (IDNA, NFC, case).
        return self.signup_email.hit(mailbox_key(email))

    def confirm(self, client: str) -> float | None:
        if not self.settings.enabled:
            return None
        return self.confirm_ip.hit(client)

    def search(self, client: str) -> float | None:
        if not self.settings.enabled:
            return None
        return self.search_ip.hit(client)


def retry_after(wait_s: float) -> str:
    """Retry-After in whole seconds, rounded up (RFC 9110 section 10.2.3)."""
    return str(max(1, int(wait_s + 0.999)))
