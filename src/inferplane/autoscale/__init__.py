"""Autoscaling: signals, the pure scaling policy, and the loop that sets desired counts."""

from inferplane.autoscale.loop import Autoscaler
from inferplane.autoscale.policy import Decision, ScalingPolicy, Signals
from inferplane.autoscale.signals import SignalReader

__all__ = ["Autoscaler", "Decision", "ScalingPolicy", "SignalReader", "Signals"]
