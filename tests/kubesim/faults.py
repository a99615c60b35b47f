"""Fault injection for reliability tests: failing responses and slow responses at chosen points.

Rules match on HTTP method and a regex searched in the request path (with query string), and
fire a limited number of times (times=None: until cleared). They run before any API logic, so
an injected 503 on a PATCH means the object did not change, just like a failing apiserver.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass


@dataclass
class Rule:
    method: str | None
    pattern: re.Pattern | None
    times: int | None
    status: int = 0  # failure status; 0 for a slow rule
    message: str | None = None
    delay: float = 0.0
    retry_after: int | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return ((self.method is None or self.method.upper() == method)
                and (self.pattern is None or self.pattern.search(path) is not None))


class Faults:
    def __init__(self):
        self._lock = threading.Lock()
        self._rules: list[Rule] = []

    def add_failure(self, method=None, path_regex=None, status=503, times=1, message=None, retry_after=None) -> Rule:
        return self._add(Rule(method, re.compile(path_regex) if path_regex else None, times, status, message,
                              retry_after=retry_after))

    def add_slow(self, path_regex, seconds, method=None, times=None) -> Rule:
        return self._add(Rule(method, re.compile(path_regex) if path_regex else None, times, delay=seconds))

    def _add(self, rule: Rule) -> Rule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, method: str, path: str) -> tuple[float, Rule | None]:
        """For one request: total delay to sleep, and the failure rule to answer with (if any)."""
        delay, failure = 0.0, None
        with self._lock:
            for rule in list(self._rules):
                if not rule.matches(method, path) or (rule.status and failure is not None):
                    continue
                rule.hits += 1
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times <= 0:
                        self._rules.remove(rule)
                if rule.status:
                    failure = rule
                else:
                    delay += rule.delay
        return delay, failure
