"""Throttling of failed logins (登录限流), per account name and per client address, with `limits`.

Only failures are counted, so people who type their password right are never slowed down. A
throttled request is refused with 429 and Retry-After before its password is checked, so guessing
costs the attacker time without costing us a hash. Counts live in the storage named by
GONGJI_RATE_LIMIT_STORAGE: memory:// (the default) keeps them per process, which is why each app
gets its own throttle; a redis:// URI shares them between processes. The lockout in the database
(auth_service.LOCKOUT_AFTER) backs this up across processes and restarts.
"""

from __future__ import annotations

import time

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from gongji.api.auth_service import RETRY_LATER, normalise_username
from gongji.core.errors import TooManyRequests

#: Failed logins per account name (known or not, so answers do not reveal which names exist) in any
#: 15 minutes: enough for a person who mistypes, and caps online guessing of one account at about
#: 1,000 tries a day, hopeless against a 12-character password outside the common-password list.
ACCOUNT_FAILURES = parse("10 per 15 minutes")
#: Failed logins per client address in any 15 minutes: room for a whole office behind one NAT
#: address to mistype, while one machine spraying a common password over many names is stopped
#: after 50 names.
ADDRESS_FAILURES = parse("50 per 15 minutes")


class LoginThrottle:
    """Moving-window counts of failed logins; `check` refuses once either window is full."""

    def __init__(self, storage_uri: str = "memory://"):
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))

    def _limits(self, username: str, address: str) -> list[tuple[RateLimitItem, str, str]]:
        return [
            (ACCOUNT_FAILURES, "gongji-login-account", normalise_username(username)),
            (ADDRESS_FAILURES, "gongji-login-address", address),
        ]

    def check(self, username: str, address: str) -> None:
        """Raise TooManyRequests, with the seconds until a failure leaves the window, if either is full."""
        waits = [
            self._limiter.get_window_stats(item, *key).reset_time - time.time()
            for item, *key in self._limits(username, address)
            if not self._limiter.test(item, *key)
        ]
        if waits:
            raise TooManyRequests(RETRY_LATER, retry_after=max(1, int(max(waits)) + 1))

    def failed(self, username: str, address: str) -> None:
        for item, *key in self._limits(username, address):
            self._limiter.hit(item, *key)

    def forget(self, username: str) -> None:
        """Clear an account's failures (after a successful login or an admin's unlock)."""
        self._limiter.clear(ACCOUNT_FAILURES, "gongji-login-account", normalise_username(username))
