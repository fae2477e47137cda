"""Model configs as declearn uses them: `Model.from_config` dispatch, `allow_bin`, torch wrapper."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flwr_declearn.model.api import Model

from .cases import ModelCase, make_data


def test_model_from_config_dispatches_to_the_class_named_in_the_config(case: ModelCase) -> None:
    model = case.make()
    config = json.loads(json.dumps(model.get_config()))
    assert config["typekey"] == case.name
    kwargs = {"allow_pickle": True} if case.pickled_config else {}
    rebuilt = Model.from_config(config, **kwargs)
    assert type(rebuilt) is type(model)
    rebuilt.set_weights(model.get_weights())
    x, y = make_data()
    np.testing.assert_allclose(
        rebuilt.compute_batch_predictions((x, y, None))[1],
        model.compute_batch_predictions((x, y, None))[1],
        rtol=1e-6,
    )


def test_model_from_config_without_typekey_says_what_is_missing() -> None:
    with pytest.raises(ValueError, match="typekey"):
        Model.from_config({"model": "..."})


def test_declearn_allow_bin_argument_is_accepted(case: ModelCase) -> None:
    model = case.make()
    config = model.get_config(allow_bin=True)  # type: ignore[call-arg]
    kwargs = {"allow_pickle": True} if case.pickled_config else {}
    rebuilt = type(model).from_config(config, allow_bin=True, **kwargs)  # type: ignore[call-arg]
    assert set(rebuilt.get_weights().coefs) == set(model.get_weights().coefs)


def test_torch_wrapped_model_is_declearn_s_auto_device_module() -> None:
    torch = pytest.importorskip("torch")
    from .cases import build_torch

    model = build_torch("float32", False, 6, 8, 3, 0)
    wrapped = model.get_wrapped_model()
    assert isinstance(wrapped, torch.nn.Module)
    assert isinstance(wrapped.module, torch.nn.Sequential)
    assert list(wrapped.state_dict()) == list(model.get_weights().coefs)
    next(wrapped.parameters()).requires_grad = False  # freezing through it is followed
    assert len(model.get_weights(trainable=True).coefs) == 3
    x, y = make_data()
    expected = model.compute_batch_predictions((x, y, None))[1]
    with torch.no_grad():
        np.testing.assert_allclose(wrapped(torch.from_numpy(x)).numpy(), expected, rtol=1e-6)
