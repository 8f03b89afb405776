"""Layers: each file holds one kind, with its forward and backward side by side."""

from dnn.layers.activations import (
    ACTIVATIONS,
    ELU,
    GELU,
    Identity,
    LeakyReLU,
    Linear,
    LogSoftmax,
    Mish,
    PReLU,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
    activation,
)
from dnn.layers.attention import MultiHeadAttention
from dnn.layers.base import REGISTRY, Layer, register
from dnn.layers.batchnorm import BatchNorm
from dnn.layers.bidirectional import Bidirectional
from dnn.layers.conv import Conv2D
from dnn.layers.conv1d import Conv1D
from dnn.layers.conv_transpose import Conv2DTranspose
from dnn.layers.dense import Dense
from dnn.layers.dropout import Dropout
from dnn.layers.embedding import Embedding
from dnn.layers.groupnorm import GroupNorm
from dnn.layers.gru import GRU
from dnn.layers.layernorm import LayerNorm
from dnn.layers.lstm import LSTM
from dnn.layers.merge import Add, Average, Concatenate, Multiply, Subtract
from dnn.layers.patches import Patches
from dnn.layers.pooling import AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D
from dnn.layers.positional import PositionalEmbedding, SinusoidalPositionalEncoding
from dnn.layers.recurrent import Recurrent
from dnn.layers.reshape import Flatten, Reshape
from dnn.layers.residual import Residual
from dnn.layers.rnn import RNN
from dnn.layers.sequence_pool import SequenceAvgPool
from dnn.layers.upsampling import UpSampling2D

__all__ = [
    "ACTIVATIONS", "ELU", "GELU", "REGISTRY", "Dense", "Dropout", "Identity", "Layer", "LeakyReLU",
    "Linear", "LogSoftmax", "ReLU", "Sigmoid", "Softmax", "Softplus", "Tanh",
    "activation", "register",
]
__all__ += ["BatchNorm", "Embedding", "LayerNorm", "Residual"]
__all__ += ["Add", "Average", "Concatenate", "Multiply", "Subtract"]
__all__ += ["AvgPool2D", "Conv2D", "Flatten", "GlobalAvgPool2D", "MaxPool2D", "Reshape"]
__all__ += ["GRU", "LSTM", "RNN", "Recurrent"]
__all__ += ["Bidirectional", "GroupNorm", "Mish", "PReLU", "SiLU"]
__all__ += ["MultiHeadAttention", "PositionalEmbedding", "SinusoidalPositionalEncoding"]
__all__ += ["Patches", "SequenceAvgPool"]
__all__ += ["Conv1D", "Conv2DTranspose", "GlobalMaxPool2D", "UpSampling2D"]
