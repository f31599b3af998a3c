"""JAX's persistent compilation cache for the `keras-realnvp` commands.

On JAX every process compiles its programs anew: the first training step of the cifar10
architecture takes 33-77 s on 2 cores (docs/performance.md, Compile time), the bits/dim and
sampling programs of `evaluate` and `sample` a few seconds to tens of seconds more. JAX can
keep compiled programs on disk and load them in later processes (its persistent compilation
cache, keyed by the program, the JAX and XLA versions, the flags and the device). The
commands `train`, `evaluate`, `sample` and `diagnose` turn it on (`keras_realnvp.cli.arguments.
run_command`), so a resumed run, a second run of the same architecture or a repeated
evaluation compiles only what it has not compiled before. `keras-realnvp benchmark` does not:
it measures compile time. Library code (`RealNVP`, `TrainingRun`) leaves JAX's settings alone.

Where: `KERAS_REALNVP_COMPILATION_CACHE` names the folder (`off` turns the cache off); by default
`$XDG_CACHE_HOME/keras_realnvp/jax` or `~/.cache/keras_realnvp/jax`, at most `MAX_BYTES`, the
least recently used programs evicted first, programs that compile in under a second not kept
(unless `JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS` says otherwise). A cache the user set for JAX itself
(`JAX_COMPILATION_CACHE_DIR` or `jax.config`) is left as it is. TensorFlow and PyTorch have no
such cache; there this does nothing.
"""

import os
from pathlib import Path

ENVIRONMENT_VARIABLE = "KERAS_REALNVP_COMPILATION_CACHE"
MAX_BYTES = 2 * 1024**3
# Programs that compile faster than this are not worth a file (JAX's default is 1 s).
MIN_COMPILE_SECONDS = 1.0


def default_folder() -> Path:
    """`$XDG_CACHE_HOME/keras_realnvp/jax`, or `~/.cache/keras_realnvp/jax` without it.

    Example:

    >>> default_folder().parts[-2:]
    ('keras_realnvp', 'jax')
    """
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "keras_realnvp" / "jax"


def enable_compilation_cache(folder=None) -> Path | None:
    """On JAX, keep compiled programs in `folder` across processes; the folder in use, or None.

    `folder` defaults to `KERAS_REALNVP_COMPILATION_CACHE`'s, else `default_folder()`; `off`
    there turns the cache off (None is returned). A folder already set for JAX
    (`JAX_COMPILATION_CACHE_DIR`, `jax.config`) stays, and is returned. On TensorFlow and
    PyTorch: None, nothing changed.

    Example:

    >>> import keras
    >>> folder = enable_compilation_cache()
    >>> (folder is not None) == (keras.backend.backend() == "jax")
    True
    """
    import keras

    if keras.backend.backend() != "jax":
        return None
    import jax

    current = jax.config.jax_compilation_cache_dir
    if current:
        return Path(current)
    chosen = folder if folder is not None else os.environ.get(ENVIRONMENT_VARIABLE) or default_folder()
    if str(chosen).strip().lower() == "off":
        return None
    chosen = Path(chosen).expanduser()
    jax.config.update("jax_compilation_cache_dir", str(chosen))
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return chosen
