"""``GET /admin/queues``: the held-request queue per deployment, priority and tenant.

One entry per deployment the gateway serves::

    {"deployments": {"smollm2": {
        "depth": 3, "oldest_wait_s": 1.2, "bound_per_replica": 4, "room": 0,
        "held_total": 120, "timeouts_total": 2, "rejected_total": 0,
        "groups": [{"priority": "high", "tenant": "ops", "depth": 1, "oldest_wait_s": 0.1,
                    "served": 10, "mean_wait_s": 0.05, "timeouts": 0}, ...]}}}

``groups`` lists every (priority, tenant) that has requests held now or had some held
since the gateway started, in release order. A balancer can read ``depth`` and ``room``
to choose a gateway (what Ollama's users ask for in ollama#2004).
"""

from __future__ import annotations

from typing import Any

from inferplane.observability.queue_metrics import priority_name
from inferplane.routing.held import HeldQueue
from inferplane.routing.router import Router

__all__ = ["queues_view"]


def queues_view(router: Router, held: HeldQueue | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    now = held.now() if held is not None else 0.0
    for name in router.deployments:
        eps = router.registry.ready(name)
        bounds = {router.bound(e) for e in eps}
        bound = next(iter(bounds)) if len(bounds) == 1 else None
        tickets = held.held(name) if held is not None else []
        groups: dict[tuple[int, str], dict[str, Any]] = {}
        order: list[tuple[int, str]] = []
        for t in tickets:
            k = (t.priority, t.tenant or "")
            g = groups.get(k)
            if g is None:
                g = groups[k] = {"priority": priority_name(t.priority), "tenant": t.tenant, "depth": 0,
                                 "oldest_wait_s": 0.0, "served": 0, "mean_wait_s": None, "timeouts": 0}
                order.append(k)
            g["depth"] += 1
            g["oldest_wait_s"] = round(max(g["oldest_wait_s"], now - t.held_since), 4)
        for (dep, prio, tenant), st in (held.waits.items() if held is not None else ()):
            if dep != name:
                continue
            k = (prio, tenant or "")
            g = groups.get(k)
            if g is None:
                g = groups[k] = {"priority": priority_name(prio), "tenant": tenant, "depth": 0,
                                 "oldest_wait_s": 0.0, "served": 0, "mean_wait_s": None, "timeouts": 0}
                order.append(k)
            g["served"] = st.served
            g["timeouts"] = st.timeouts
            g["mean_wait_s"] = round(st.wait_s_sum / st.served, 4) if st.served else None
        room = router.room(name)
        out[name] = {
            "depth": len(tickets),
            "oldest_wait_s": round(held.oldest_wait_s(name), 4) if held is not None else 0.0,
            "bound_per_replica": bound,
            "room": None if room >= 1 << 30 else room,
            "ready_replicas": len(eps),
            "held_total": held.held_total[name] if held is not None else 0,
            "timeouts_total": held.timeouts_total[name] if held is not None else 0,
            "rejected_total": held.rejected_total[name] if held is not None else 0,
            "groups": [groups[k] for k in order],
        }
    return {"deployments": out}
