"""Data-loading benchmark (keras_realnvp/benchmarks/data_loading.py), runnable from a checkout.

Installed, the same is `python -m keras_realnvp.benchmarks.data_loading`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/, for _checkout
import _checkout  # noqa: E402, F401

from keras_realnvp.benchmarks.data_loading import main  # noqa: E402

if __name__ == "__main__":
    main()
