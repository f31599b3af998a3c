"""`keras_realnvp.backend.compilation_cache`: the commands' persistent compilation cache on JAX.

Each check runs fresh processes without the tests' own cache (`JAX_COMPILATION_CACHE_DIR`,
set by conftest.py) and counts JAX's cache events:

- a command's work (`run_command`) with `KERAS_REALNVP_COMPILATION_CACHE=DIR` compiles a
  program and writes it to DIR (a miss); a second process loads it from there (a hit);
- with `KERAS_REALNVP_COMPILATION_CACHE=off` nothing is written;
- a cache folder set for JAX itself is kept.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from keras_realnvp.backend.compilation_cache import default_folder

WORK = """
import json
import jax, jax.numpy as jnp
from keras_realnvp.cli.arguments import run_command

events = []
jax.monitoring.register_event_listener(lambda name, **kwargs: events.append(name))

def work(args):
    return float(jax.jit(lambda x: jnp.tanh(x) @ x.T)(jnp.ones((8, 8))).sum())

run_command(work, None)
print(json.dumps({"folder": jax.config.jax_compilation_cache_dir,
                  "hits": events.count("/jax/compilation_cache/cache_hits"),
                  "misses": events.count("/jax/compilation_cache/cache_misses")}))
"""


def _work(setting, **extra):
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env.update(KERAS_BACKEND="jax", KERAS_REALNVP_COMPILATION_CACHE=str(setting),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", **extra)
    done = subprocess.run([sys.executable, "-c", WORK], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


jax_only = pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX's persistent compilation cache")


@jax_only
def test_a_command_writes_its_programs_and_the_next_process_loads_them(tmp_path):
    folder = tmp_path / "cache"
    first = _work(folder)
    assert first["folder"] == str(folder) and first["misses"] >= 1 and first["hits"] == 0
    assert any(folder.iterdir())
    second = _work(folder)
    assert second["hits"] >= 1 and second["misses"] == 0, second


@jax_only
def test_off_writes_nothing_and_a_folder_set_for_jax_stays(tmp_path):
    off = _work("off")
    assert not off["folder"] and off["hits"] == off["misses"] == 0
    own = tmp_path / "own"
    kept = _work(tmp_path / "ours", JAX_COMPILATION_CACHE_DIR=str(own))
    assert kept["folder"] == str(own) and any(own.iterdir()) and not (tmp_path / "ours").exists()


def test_the_default_folder_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_folder() == tmp_path / "keras_realnvp" / "jax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_folder() == Path.home() / ".cache" / "keras_realnvp" / "jax"
