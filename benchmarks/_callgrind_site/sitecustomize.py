"""Loaded by the gateway that ``gateway_overhead.py --instructions`` runs under valgrind (and by nothing
else; a benchmark's measuring aid, not part of the product):

- its health probes may take a minute instead of 2 s: under valgrind a round over 1,000 endpoints
  takes far longer than natively and would otherwise time every endpoint out (never ready);
- SIGUSR1 runs one health-check round (every endpoint probed and scraped) at once, so that the
  benchmark can count what one round costs.
"""

import asyncio
import signal

import inferplane.routing.health as _health

_init = _health.HealthChecker.__init__
_start = _health.HealthChecker.start


def _patient_init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    kwargs["timeout_s"] = 60.0
    _init(self, *args, **kwargs)


def _start_with_signal(self):  # type: ignore[no-untyped-def]
    _start(self)
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, lambda: asyncio.ensure_future(self.check_all()))


_health.HealthChecker.__init__ = _patient_init  # type: ignore[method-assign]
_health.HealthChecker.start = _start_with_signal  # type: ignore[method-assign]
