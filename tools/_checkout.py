"""Lets `python tools/COMMAND.py` run from a checkout that was not installed: puts the checkout on sys.path.

Each tool starts with `import _checkout` (Python puts the script's folder, tools/, first on
sys.path) and then calls its command in `keras_realnvp.cli`.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if (ROOT / "keras_realnvp").is_dir() and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
