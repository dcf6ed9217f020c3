"""Classifiers built from xpnet's layers."""

from .fc_net import FullyConnectedNet, TwoLayerNet

__all__ = ["FullyConnectedNet", "TwoLayerNet"]
