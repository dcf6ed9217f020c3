"""One error policy: every xpnet exception is an XpnetError (and keeps its builtin
base), names the function the user called, and the command turns it into one line."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import xpnet
from xpnet import errors, layers
from xpnet.app import cli


def test_every_exception_derives_from_xpnet_error_and_a_builtin():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if c.__module__ == errors.__name__ and c is not errors.XpnetError]
    assert len(classes) >= 10
    for cls in classes:
        assert issubclass(cls, errors.XpnetError), cls
        builtin = [b for b in cls.__mro__[1:] if b.__module__ == "builtins"
                   and b not in (Exception, BaseException, object)]
        assert builtin, f"{cls.__name__} has no builtin base such as ValueError"


@pytest.mark.parametrize("call, kind, message", [
    (lambda x: layers.affine_forward(x, x, x[0, :]), ValueError, "affine_forward"),
    (lambda x: layers.relu_forward([1, 2]), TypeError, "relu_forward"),
    (lambda x: layers.batchnorm_forward(x, x[0, :], x[0, :], {}), KeyError, "batchnorm_forward"),
    (lambda x: layers.dropout_forward(x, {"mode": "train", "p": 2}), ValueError,
     "dropout_forward"),
    (lambda x: xpnet.FullyConnectedNet([4], dropout_keep_ratio=0), ValueError,
     "FullyConnectedNet: dropout_keep_ratio"),
    (lambda x: xpnet.FullyConnectedNet([0]), ValueError, "FullyConnectedNet"),
    (lambda x: xpnet.get_backend("nope"), RuntimeError, "unknown backend"),
])
def test_errors_are_xpnet_errors_naming_the_function_called(backend, call, kind, message):
    x = backend.asarray(np.ones((3, 4), dtype=np.float32))
    with pytest.raises(xpnet.XpnetError, match=message) as info:
        call(x)
    assert isinstance(info.value, kind)


def test_layernorm_backward_errors_name_layernorm(backend):
    x = backend.asarray(np.ones((3, 4)))
    g = backend.asarray(np.ones(4))
    _, cache = layers.layernorm_forward(x, g, g, {})
    with pytest.raises(xpnet.InputError, match="^layernorm_backward: dout"):
        layers.layernorm_backward(backend.asarray(np.ones((4, 3))), cache)
    with pytest.raises(xpnet.InputError, match="^layernorm_backward: the cache is None"):
        layers.layernorm_backward(x, None)
    with pytest.raises(xpnet.InputError, match="^batchnorm_backward_alt: the cache is None.*"
                                              "batchnorm_forward"):
        layers.batchnorm_backward_alt(x, None)


def test_cli_turns_xpnet_errors_into_one_line(monkeypatch, capsys):
    from xpnet.app import train

    def fail(*args, **kwargs):
        raise xpnet.DataError("the data went missing")

    monkeypatch.setattr(train, "train", fail)
    assert cli.main(["train"]) == 2
    err = capsys.readouterr().err
    assert err == "xpnet: error: the data went missing\n"
    assert cli.main(["--debug", "train"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("xpnet: error: the data went missing\n")


def test_cli_shows_the_traceback_of_a_bug(monkeypatch):
    from xpnet.app import train

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug in xpnet")

    monkeypatch.setattr(train, "train", bug)
    with pytest.raises(ZeroDivisionError, match="a bug in xpnet"):
        cli.main(["train"])
