"""Layers: each file holds one kind, with its forward and backward side by side."""

from dnn.layers.activations import (
    ACTIVATIONS,
    ELU,
    GELU,
    LeakyReLU,
    Linear,
    LogSoftmax,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
    activation,
)
from dnn.layers.base import REGISTRY, Layer, register
from dnn.layers.dense import Dense
from dnn.layers.dropout import Dropout

__all__ = [
    "ACTIVATIONS", "ELU", "GELU", "REGISTRY", "Dense", "Dropout", "Layer", "LeakyReLU",
    "Linear", "LogSoftmax", "ReLU", "Sigmoid", "Softmax", "Softplus", "Tanh",
    "activation", "register",
]
