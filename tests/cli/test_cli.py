"""The `keras-realnvp` command: the dispatcher, `python -m keras_realnvp`, the console script and tools/ wrappers.

Subprocesses that import a backend cost seconds each: the few here check what only a new
process shows (the entry points, exit statuses); the rest runs in this process.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from keras_realnvp import cli
from keras_realnvp.cli import sample

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("train", "evaluate", "sample", "publish", "diagnose")
SCRIPT = Path(sys.executable).parent / "keras-realnvp"


def _run(*command, timeout=300):
    return subprocess.run([*map(str, command)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_the_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: keras-realnvp COMMAND")
    for name in (*COMMANDS, "benchmark"):
        assert f"\n  {name} " in out, name
    assert cli.main([]) == 2  # no command: the same help, as a usage error


def test_an_unknown_command_exits_2_naming_the_commands(capsys):
    assert cli.main(["trian"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("keras-realnvp: error: unknown command 'trian'") and len(err.splitlines()) == 1
    assert all(name in err for name in COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_has_its_own_help_under_the_installed_name(name, capsys):
    module = __import__(f"keras_realnvp.cli.{name}", fromlist=["main"])
    with pytest.raises(SystemExit) as raised:
        module.main(["--help"])
    assert raised.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: keras-realnvp {name}"), out[:200]
    assert f"keras-realnvp {name}" in out.split("\n\n", 2)[-1]  # the examples name the installed command


def test_a_usage_error_is_one_error_line_and_status_2(capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(["train", "--epochs", "0"])
    assert raised.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: argument --epochs: must be an integer >= 1"), lines
    assert "keras-realnvp train --help" in lines[0]
    with pytest.raises(SystemExit) as raised:
        sample.main(["--experiment", "manifold"])  # a check of parse_args, not argparse's own
    assert raised.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: --experiment manifold needs --model or --preset (see keras-realnvp sample --help)")
    with pytest.raises(SystemExit) as raised:
        sample.main(["--model", "nowhere.keras"])  # a ValueError of the command: the same one line
    assert raised.value.code == 2
    assert capsys.readouterr().err.strip() == "error: no model at nowhere.keras"


def test_the_module_runs_as_the_command():
    result = _run(sys.executable, "-m", "keras_realnvp", "sample", "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage: keras-realnvp sample") and "--experiment" in result.stdout


def test_the_tools_are_thin_wrappers_that_run_from_a_checkout():
    for name in COMMANDS:
        lines = (ROOT / "tools" / f"{name}.py").read_text().splitlines()
        assert len(lines) < 15 and f"from keras_realnvp.cli.{name} import main" in lines, name
    # One of them run: the checkout's package, whatever is installed.
    result = _run(sys.executable, ROOT / "tools" / "diagnose.py", "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: keras-realnvp diagnose"), result.stderr[-2000:]


@pytest.mark.skipif(not SCRIPT.exists(), reason=f"no installed console script at {SCRIPT}")
def test_the_installed_console_script():
    from keras_realnvp.version import __version__

    result = _run(SCRIPT, "--version")
    assert result.returncode == 0 and result.stdout.strip() == f"keras-realnvp {__version__}", result.stderr


def test_sample_writes_a_picture_of_the_builtin_preset(tmp_path):
    # End to end once, in a new process: the shipped weights, the held-out patches, the PNG.
    output = tmp_path / "samples.png"
    command = [SCRIPT] if SCRIPT.exists() else [sys.executable, "-m", "keras_realnvp"]
    result = _run(*command, "sample", "--preset", "embedded_16", "--num", "2", "--scale", "1", "--output", output)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"wrote {output}" in result.stdout
    with Image.open(output) as picture:  # 2 held-out patches (left) beside 2 samples (right), 16x16 each
        assert picture.mode == "RGB" and picture.size[0] > 4 * 16 and picture.size[1] > 16, picture.size



@pytest.mark.parametrize("name", ["train", "evaluate", "sample", "diagnose"])
def test_a_missing_optional_package_is_one_error_line_naming_the_extra(name, capsys, monkeypatch):
    # As on a lean install without `datasets` or scikit-learn: the data layer raises an
    # ImportError naming the extra, and the command turns it into its usual one-line error.
    import importlib

    module = importlib.import_module(f"keras_realnvp.cli.{name}")
    message = "Hub datasets are read with `datasets`; install it with `pip install keras-realnvp[train]`."

    def missing(args):
        raise ImportError(message)

    monkeypatch.setattr(module, "run", missing)
    argv = {"train": [], "evaluate": ["--preset", "embedded_16"], "sample": ["--preset", "embedded_16"],
            "diagnose": ["embedded_16"]}[name]
    with pytest.raises(SystemExit) as stopped:
        module.main(argv)
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: " + message]
