"""Routing policies, one per module, built by name with :func:`make_policy`.

Every policy implements :class:`inferplane.routing.types.Policy`: pure, synchronous,
no I/O, and each ``Decision`` carries a score (lower is better) for every candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from inferplane.routing.policies.least_load import LeastLoadPolicy
from inferplane.routing.policies.power_of_two import PowerOfTwoPolicy
from inferplane.routing.policies.prefix import PrefixDecision, PrefixPolicy
from inferplane.routing.policies.round_robin import RoundRobinPolicy
from inferplane.routing.policies.session import SessionPolicy
from inferplane.routing.types import Policy

__all__ = [
    "POLICY_NAMES",
    "LeastLoadPolicy",
    "PowerOfTwoPolicy",
    "PrefixDecision",
    "PrefixPolicy",
    "RoundRobinPolicy",
    "SessionPolicy",
    "UnknownPolicyError",
    "make_policy",
]

_FACTORIES: dict[str, Callable[..., Policy]] = {
    RoundRobinPolicy.name: RoundRobinPolicy,
    LeastLoadPolicy.name: LeastLoadPolicy,
    PowerOfTwoPolicy.name: PowerOfTwoPolicy,
    SessionPolicy.name: SessionPolicy,
    PrefixPolicy.name: PrefixPolicy,
}

POLICY_NAMES: tuple[str, ...] = tuple(_FACTORIES)
"""Names accepted by :func:`make_policy` (and by the deployment config's ``policy``)."""


class UnknownPolicyError(ValueError):
    """``make_policy`` was given a name that is not in ``POLICY_NAMES``."""


def make_policy(name: str, **options: Any) -> Policy:
    """A new policy instance of kind ``name``, constructed with ``options``.

    Each call returns fresh state (policies are never shared between deployments).

    Raises:
        UnknownPolicyError: ``name`` is not one of ``POLICY_NAMES``.
        TypeError: an option the policy does not take.
        ValueError: an option out of range.
    """
    factory = _FACTORIES.get(name)
    if factory is None:
        raise UnknownPolicyError(
            f"unknown routing policy {name!r}; choose one of {', '.join(POLICY_NAMES)}"
        )
    return factory(**options)
