"""The models ``xpnet train --model NAME`` can build, and the options each one takes.

Each :class:`ModelSpec` names the command-line options that shape its model
and builds the model from the resolved options, the input shape and the
number of classes. Options of other models must be left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import layers
from .._ops import checks
from ..airbench import MUON_HEAD, airbench_net
from ..classifiers.cnn import ThreeLayerConvNet
from ..classifiers.fc_net import NORMALIZATIONS, FullyConnectedNet
from ..errors import InputError
from ..nn import (
    Affine,
    Conv,
    GlobalAvgPool,
    MaxPool,
    ReLU,
    Residual,
    Sequential,
    SpatialBatchNorm,
)
from ..nn.model import Model

__all__ = ["MODELS", "MODEL_OPTIONS", "NORMALIZATION_CHOICES", "ModelSpec", "build_model",
           "describe_model"]

#: ``--normalization`` values (``none`` stands for no normalization).
NORMALIZATION_CHOICES = tuple(n or "none" for n in NORMALIZATIONS)


@dataclass(frozen=True)
class ModelSpec:
    """A model the command can train.

    Attributes
    ----------
    name : str
        The ``--model`` value.
    summary : str
        One line for ``--help``.
    options : tuple of str
        The model-shaping options it takes (keys of the resolved options).
    preset : str
        The preset ``--model NAME`` starts from.
    build : callable
        ``build(options, input_shape, num_classes, backend) -> Model``.
    validate : callable
        ``validate(options)``: raises InputError naming the bad option.
    describe : callable
        ``describe(options) -> str``: the model in one line.
    """

    name: str
    summary: str
    options: tuple[str, ...]
    preset: str
    build: Callable[[dict[str, Any], tuple[int, ...], int, Any], Model]
    validate: Callable[[dict[str, Any]], None]
    describe: Callable[[dict[str, Any]], str]


def _hidden(options: dict[str, Any], count: int | None = None) -> None:
    hidden = options["hidden"]
    if not isinstance(hidden, list) or not hidden:
        raise InputError(f"--hidden must be one or more positive integers, got {hidden!r}")
    for h in hidden:
        checks.positive_int(h, "every --hidden size")
    if count is not None and len(hidden) != count:
        raise InputError(f"--model {options['model']} takes {count} --hidden size, got "
                         f"{len(hidden)}: {' '.join(map(str, hidden))}")


# -- fc: FullyConnectedNet -------------------------------------------------------

def _build_fc(options: dict[str, Any], input_shape: tuple[int, ...], num_classes: int,
              backend: Any) -> Model:
    # The model's seed would also fix the dropout mask (for gradient checks); for
    # training the mask must change every step: it comes from the Solver's stream.
    normalization = options["normalization"]
    model = FullyConnectedNet(
        options["hidden"], input_dim=math.prod(input_shape), num_classes=num_classes,
        dropout_keep_ratio=options["keep_ratio"],
        normalization=None if normalization == "none" else normalization,
        reg=options["reg"], weight_scale=options["weight_scale"], dtype="float32",
        seed=options["seed"], backend=backend)
    model.dropout_param.pop("seed", None)
    return model


def _validate_fc(options: dict[str, Any]) -> None:
    _hidden(options)
    checks.choice(options["normalization"], NORMALIZATION_CHOICES, "normalization")
    checks.keep_ratio(options["keep_ratio"], "--keep-ratio")


def _describe_fc(options: dict[str, Any]) -> str:
    keep = options["keep_ratio"]
    return (f"FullyConnectedNet {options['hidden']} ({options['normalization']}"
            f"{f', keep {keep}' if keep != 1 else ''})")


# -- cnn: ThreeLayerConvNet ------------------------------------------------------

def _build_cnn(options: dict[str, Any], input_shape: tuple[int, ...], num_classes: int,
               backend: Any) -> Model:
    if len(input_shape) != 3:
        raise InputError(f"--model cnn needs images of shape (C, H, W), got {input_shape}")
    return ThreeLayerConvNet(
        input_dim=input_shape, num_filters=options["num_filters"],
        filter_size=options["filter_size"], hidden_dim=options["hidden"][0],
        num_classes=num_classes, weight_scale=options["weight_scale"], reg=options["reg"],
        dtype="float32", seed=options["seed"], backend=backend)


def _validate_cnn(options: dict[str, Any]) -> None:
    _hidden(options, count=1)
    checks.positive_int(options["num_filters"], "--filters")
    checks.positive_int(options["filter_size"], "--filter-size")


def _describe_cnn(options: dict[str, Any]) -> str:
    return (f"ThreeLayerConvNet ({options['num_filters']} filters "
            f"{options['filter_size']}x{options['filter_size']}, hidden {options['hidden'][0]})")


# -- composed models: Sequential nets of xpnet.nn modules ---------------------------

def _conv_bn_relu(channels: int) -> list:
    return [Conv(channels), SpatialBatchNorm(), ReLU()]


def convnet(width: int, num_classes: int) -> list:
    """A VGG-style net for CPUs: three stages of two 3x3 conv-BN-ReLU layers (width,
    2 width, 4 width channels), each halving the image with 2x2 max pooling, then
    global average pooling and an affine layer."""
    layers: list = []
    for stage in (1, 2, 4):
        layers += [*_conv_bn_relu(stage * width), *_conv_bn_relu(stage * width), MaxPool(2)]
    return [*layers, GlobalAvgPool(), Affine(num_classes)]


def resnet(width: int, num_classes: int) -> list:
    """The ResNet-9 of fast CIFAR-10 training (width 64 is the published net): a prep
    layer, three stages of conv-BN-ReLU and max pooling (2, 4, 8 width channels), a
    residual block of two conv-BN-ReLU after the first and the last, then global
    average pooling and an affine layer."""
    def block(c):
        return Residual(*_conv_bn_relu(c), *_conv_bn_relu(c))

    return [*_conv_bn_relu(width),
            *_conv_bn_relu(2 * width), MaxPool(2), block(2 * width),
            *_conv_bn_relu(4 * width), MaxPool(2),
            *_conv_bn_relu(8 * width), MaxPool(2), block(8 * width),
            GlobalAvgPool(), Affine(num_classes)]


COMPOSED = {"convnet": convnet, "resnet": resnet}


def _build_composed(options: dict[str, Any], input_shape: tuple[int, ...], num_classes: int,
                    backend: Any) -> Model:
    if len(input_shape) != 3:
        raise InputError(f"--model {options['model']} needs images of shape (C, H, W), got "
                         f"{input_shape}")
    layers = COMPOSED[options["model"]](options["width"], num_classes)
    return Sequential(*layers, input_shape=input_shape, reg=options["reg"],
                      label_smoothing=options["label_smoothing"], dtype="float32",
                      seed=options["seed"], backend=backend)


def _validate_composed(options: dict[str, Any]) -> None:
    checks.positive_int(options["width"], "--width")


def _describe_composed(options: dict[str, Any]) -> str:
    return f"{options['model']} (Sequential, width {options['width']})"


# -- airbench: the CIFAR-10 speed record's net --------------------------------------

def _build_airbench(options: dict[str, Any], input_shape: tuple[int, ...], num_classes: int,
                    backend: Any) -> Model:
    if len(input_shape) != 3 or tuple(input_shape[1:]) != (32, 32):
        raise InputError(f"--model airbench needs 32x32 images (CIFAR-10), got "
                         f"{checks.shape_str(input_shape)}")
    w = options["width"]
    head = MUON_HEAD if options.get("recipe") == "airbench-muon" else {}
    return airbench_net((w, 4 * w, 4 * w), input_shape=input_shape, num_classes=num_classes,
                        gelu=options["gelu"], label_smoothing=options["label_smoothing"],
                        seed=options["seed"], backend=backend, **head)


def _validate_airbench(options: dict[str, Any]) -> None:
    checks.positive_int(options["width"], "--width")
    checks.choice(options["gelu"], layers.GELU_FORMS, "--gelu")


def _describe_airbench(options: dict[str, Any]) -> str:
    w = options["width"]
    return f"airbench (widths {w}/{4 * w}/{4 * w}, GELU {options['gelu']})"


MODELS: dict[str, ModelSpec] = {
    "fc": ModelSpec("fc", "FullyConnectedNet (the course's fully-connected net)",
                    ("hidden", "normalization", "keep_ratio"), "default",
                    _build_fc, _validate_fc, _describe_fc),
    "cnn": ModelSpec("cnn", "ThreeLayerConvNet: conv - relu - pool - affine - relu - affine",
                     ("hidden", "num_filters", "filter_size"), "cnn",
                     _build_cnn, _validate_cnn, _describe_cnn),
    "convnet": ModelSpec("convnet", "a VGG-style Sequential net sized for CPUs",
                         ("width",), "convnet", _build_composed, _validate_composed,
                         _describe_composed),
    "resnet": ModelSpec("resnet", "ResNet-9, a residual Sequential net for GPUs",
                        ("width",), "resnet", _build_composed, _validate_composed,
                        _describe_composed),
    "airbench": ModelSpec("airbench", "the CIFAR-10 speed record's net (patch whitening, "
                          "three conv groups, GELU; widths W/4W/4W)", ("width", "gelu"),
                          "airbench", _build_airbench, _validate_airbench,
                          _describe_airbench),
}

#: Every model-shaping option, over all models.
MODEL_OPTIONS: tuple[str, ...] = tuple(dict.fromkeys(o for m in MODELS.values()
                                                     for o in m.options))


def model_spec(name: str) -> ModelSpec:
    """The spec of ``--model name`` (InputError listing the known ones)."""
    checks.choice(name, tuple(MODELS), "model")
    return MODELS[name]


def build_model(options: dict[str, Any], input_shape: tuple[int, ...], num_classes: int,
                backend: Any) -> Model:
    """The model of ``options`` (float32, initial weights from ``seed``)."""
    model = model_spec(options["model"]).build(options, tuple(input_shape), num_classes,
                                               backend)
    model.label_smoothing = float(options.get("label_smoothing") or 0.0)
    return model


def describe_model(options: dict[str, Any]) -> str:
    return model_spec(options["model"]).describe(options)
