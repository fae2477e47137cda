"""The `declearn` import shim of compat/ resolves declearn's names to ours (run in a subprocess).

The shim is never imported into this process: it would shadow the real
declearn that other tests use as a numeric oracle.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SHIM = Path(__file__).resolve().parents[2] / "compat" / "shim"

SCRIPT = textwrap.dedent(
    """
    import json, declearn
    from declearn.optimizer import Optimizer, list_optim_modules
    from declearn.optimizer.modules import AdamModule
    from declearn.model.api import Vector, VectorSpec
    from declearn.model.sklearn import NumpyVector
    from declearn.utils import access_registered, register_type
    from declearn.utils.serialize import json_serialize, json_deserialize, msgpack_serialize
    from declearn.data_info import aggregate_data_info
    from declearn.dataset import InMemoryDataset
    from declearn.metrics import MeanSquaredError, Metric, MetricState
    import flwr_declearn.optimizer, flwr_declearn.model.api, flwr_declearn.model.numpy
    import numpy as np
    out = {
        "shim": declearn.FLWR_DECLEARN_SHIM,
        "ours": [
            Optimizer is flwr_declearn.optimizer.Optimizer,
            Vector is flwr_declearn.model.api.Vector,
            NumpyVector is flwr_declearn.model.numpy.NumpyVector,
            list_optim_modules()["adam"] is AdamModule,
        ],
        "json": json_deserialize(json_serialize({"v": NumpyVector({"a": np.ones(2)})}))["v"]
        == NumpyVector({"a": np.ones(2)}),
    }
    try:
        msgpack_serialize({})
    except NotImplementedError as exc:
        out["missing"] = str(exc)
    try:
        from declearn.optimizer.modules import NoSuchModule
        NoSuchModule()
    except NotImplementedError as exc:
        out["placeholder"] = str(exc)
    try:
        from declearn.utils import not_a_declearn_api_name
    except ImportError:
        out["lowercase"] = "ImportError"
    print(json.dumps(out))
    """
)


def test_the_shim_maps_declearn_names_onto_flwr_declearn() -> None:
    root = str(SHIM.parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SHIM), root])}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = __import__("json").loads(proc.stdout.strip().splitlines()[-1])
    assert out["shim"] is True
    assert out["ours"] == [True, True, True, True]
    assert out["json"] is True
    assert "msgpack_serialize' is not provided by flwr_declearn" in out["missing"]
    assert "NoSuchModule' is not provided by flwr_declearn" in out["placeholder"]
    assert out["lowercase"] == "ImportError"
