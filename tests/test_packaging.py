"""The built-in presets ship inside the package, so a plain `pip install` finds them."""

import subprocess
import sys
import zipfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "keras_realnvp").rglob("__init__.py")
    }
    assert found | {"keras_realnvp.presets"} == listed


def test_wheel_contains_the_builtin_presets(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = tmp_path.glob("keras_realnvp-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    presets = sorted(p.name for p in (ROOT / "presets").iterdir() if (p / "config.json").exists())
    for name in presets:
        assert f"keras_realnvp/presets/{name}/config.json" in names
        assert f"keras_realnvp/presets/{name}/metadata.json" in names
    assert "keras_realnvp/presets/embedded_16/model.weights.h5" in names
