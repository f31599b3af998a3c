"""Weights saved under one backend give the same bits/dim under the other two (to 1e-4)."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
from helpers import randomize_weights, to_numpy

from keras_realnvp import RealNVP

_LOADER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras
    from keras_realnvp import RealNVP
    folder = sys.argv[1]
    with open(folder + "/config.json") as f:
        model = RealNVP.from_config(json.load(f))
    model.load_weights(folder + "/model.weights.h5")
    x = np.load(folder + "/x.npy")
    bpd = keras.ops.convert_to_numpy(model.bits_per_dim(x))
    print(json.dumps({"backend": keras.backend.backend(), "bits_per_dim": bpd.tolist()}))
    """
)


def test_weights_move_between_backends(tmp_path, rng):
    model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=8, num_blocks=2)
    randomize_weights(model, seed=11)
    x = rng.uniform(0, 256, size=(4, 8, 8, 3)).astype("float32")
    expected = to_numpy(model.bits_per_dim(x))
    model.save_weights(tmp_path / "model.weights.h5")
    (tmp_path / "config.json").write_text(json.dumps(model.get_config()))
    np.save(tmp_path / "x.npy", x)

    this = keras.backend.backend()
    for other in sorted({"jax", "torch", "tensorflow"} - {this}):
        env = {**os.environ, "KERAS_BACKEND": other}
        result = subprocess.run(
            [sys.executable, "-c", _LOADER, str(tmp_path)], env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr[-3000:]
        record = json.loads(result.stdout.strip().splitlines()[-1])
        assert record["backend"] == other
        np.testing.assert_allclose(
            record["bits_per_dim"], expected, atol=1e-4, rtol=0, err_msg=f"{this} -> {other}"
        )
