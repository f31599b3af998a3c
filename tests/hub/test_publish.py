"""`keras-realnvp publish`: dry runs that never overwrite, checked handles, branches, a kept card, errors, clean-up.

Nothing here reaches the Hub: `huggingface_hub.HfApi`'s methods are replaced by recorders (and, to
see how a missing repo or branch is read, the single metadata request under `HfApi.file_exists`).
The card's content is tested in tests/hub/test_model_card.py.
"""

import doctest
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import huggingface_hub
import huggingface_hub.file_download
import pytest
from huggingface_hub.utils import filter_repo_objects

from keras_realnvp import RealNVP
from keras_realnvp.cli import publish
from keras_realnvp.hub.publishing import hub_target, stage_preset_for_hub

COMMAND = [sys.executable, "-m", "keras_realnvp", "publish"]
STAGED = ["README.md", "config.json", "metadata.json", "model.weights.h5"]


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    """A tiny untrained preset folder, with the metadata the train tool records."""
    return _preset_folder(tmp_path_factory.mktemp("run") / "preset", "embedded")


def _preset_folder(folder, dataset, **metadata):
    """A tiny untrained model saved as a preset folder whose run recorded training on `dataset`."""
    model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
    metadata = {
        "preset": "embedded_16",
        "dataset": {"name": "embedded photo patches", "source": "embedded", "patch_size": 16},
        "paper_bits_per_dim": None,
        "trained": {"dataset": dataset, "steps": 2, "epochs": 1, "batch_size": 8, "backend": "jax", "seed": 0,
                    "held_out_bits_per_dim": 7.25, "held_out_standard_error": 0.5, "held_out_images": 16},
        "weights": {"published": False},
        **metadata,
    }
    return model.save_to_preset(folder, metadata)


def _snapshot(folder):
    """Every file under `folder` with its bytes: what must stay unchanged."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def _run_main(argv, capsys):
    """`main(argv)` in this process: (exit status, stdout, stderr lines)."""
    try:
        publish.main([str(a) for a in argv])
        status = 0
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err.splitlines()


class _Calls(list):
    failure = None  # what the recorded upload_folder raises, if anything
    card_on_hub = False  # what the recorded file_exists answers for README.md (or an exception it raises)


@pytest.fixture
def hub(monkeypatch):
    """Replaces the HfApi calls the tool makes; records them, with the files staged at upload time."""
    calls = _Calls()

    def file_exists(self, repo_id, filename, **kwargs):
        calls.append(("file_exists", repo_id, {"filename": filename, **kwargs}))
        if isinstance(calls.card_on_hub, BaseException):
            raise calls.card_on_hub
        return calls.card_on_hub and filename == "README.md"

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))

    def create_branch(self, repo_id, **kwargs):
        calls.append(("create_branch", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        names = sorted(p.name for p in folder.iterdir())
        # What huggingface_hub would upload of the folder: its own filter of ignore_patterns.
        uploaded = sorted(filter_repo_objects(names, ignore_patterns=kwargs.get("ignore_patterns")))
        staged = {"names": names, "uploaded": uploaded, "metadata": json.loads((folder / "metadata.json").read_text()),
                  "card": (folder / "README.md").read_text()}
        calls.append(("upload_folder", kwargs["repo_id"], {**kwargs, "staged": staged}))
        if calls.failure is not None:
            raise calls.failure

    monkeypatch.setattr(huggingface_hub.HfApi, "file_exists", file_exists)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_branch", create_branch)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    return calls


@pytest.fixture
def temporary(tmp_path, monkeypatch):
    """The folder `tempfile.mkdtemp` creates in during the test, to see what the tool leaves behind."""
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


# Dry runs.


@pytest.mark.parametrize("exists", [False, True], ids=["new-folder", "empty-folder"])
def test_dry_run_stages_exactly_the_upload(preset, tmp_path, capsys, hub, exists):
    staging = tmp_path / "staging"
    if exists:
        staging.mkdir()
    status, out, err = _run_main([preset, "hf://me/tiny", "--dry-run", staging], capsys)
    assert status == 0, err
    assert sorted(p.name for p in staging.iterdir()) == STAGED
    for name in ("config.json", "model.weights.h5"):
        assert (staging / name).read_bytes() == (preset / name).read_bytes()
    metadata = json.loads((staging / "metadata.json").read_text())
    assert metadata["weights"] == {"published": True, "hf_handle": "hf://me/tiny"}
    assert metadata["trained"] == json.loads((preset / "metadata.json").read_text())["trained"]
    card = huggingface_hub.ModelCard((staging / "README.md").read_text())
    assert card.data.library_name == "keras" and card.data.eval_results[0].metric_value == 7.25
    assert 'from_preset("hf://me/tiny")' in card.text and "7.2500 ± 0.5000" in card.text
    lines = out.splitlines()
    assert lines[0] == "dry run: would upload to hf://me/tiny:" and len(lines) == 6
    assert [line.split(" (")[0].strip() for line in lines[1:5]] == ["config.json", "metadata.json",
                                                                     "model.weights.h5", "README.md"]
    # A dry run asks nothing of the Hub, so it says when the staged card would be uploaded.
    assert lines[5] == "  (README.md only if hf://me/tiny has none yet; --replace-card uploads it over one)"
    assert hub == []  # a dry run calls no Hub API


def test_dry_run_refuses_a_non_empty_folder_and_leaves_it_as_it_was(preset, tmp_path, capsys, hub):
    staging = tmp_path / "mine"
    staging.mkdir()
    (staging / "README.md").write_text("# my own notes\n")
    (staging / "config.json").write_text('{"mine": true}\n')
    before = _snapshot(staging)
    status, _, err = _run_main([preset, "hf://me/tiny", "--dry-run", staging], capsys)
    assert status == 2 and len(err) == 1
    assert err[0].startswith(f"error: The staging folder {staging} is not empty (it holds README.md, config.json)")
    assert _snapshot(staging) == before and hub == []


def test_a_second_dry_run_into_the_same_folder_is_refused(preset, tmp_path, capsys):
    staging = tmp_path / "staging"
    assert _run_main([preset, "hf://me/tiny", "--dry-run", staging], capsys)[0] == 0
    before = _snapshot(staging)
    status, _, err = _run_main([preset, "hf://me/other", "--dry-run", staging], capsys)
    assert status == 2 and "is not empty" in err[0]
    assert _snapshot(staging) == before  # still the first run's card and metadata


def test_dry_run_refuses_a_file(preset, tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me\n")
    status, _, err = _run_main([preset, "hf://me/tiny", "--dry-run", target], capsys)
    assert status == 2 and err == [f"error: The staging folder {target} is a file; name a new or empty folder."]
    assert target.read_text() == "keep me\n"


@pytest.mark.parametrize("where", ["itself", "new-inside", "empty-inside", "link-to-it"])
def test_dry_run_refuses_the_preset_folder_and_folders_inside_it(preset, tmp_path, capsys, where):
    before = _snapshot(preset)
    staging = {"itself": preset, "new-inside": preset / "staging", "empty-inside": preset / "empty",
               "link-to-it": tmp_path / "link"}[where]
    if where == "empty-inside":
        staging.mkdir()
    if where == "link-to-it":
        staging.symlink_to(preset, target_is_directory=True)
    try:
        status, _, err = _run_main([preset, "hf://me/tiny", "--dry-run", staging], capsys)
        assert status == 2 and len(err) == 1
        assert err[0].startswith(f"error: The staging folder {staging} is the preset folder being published")
        assert _snapshot(preset) == before
        assert where == "empty-inside" or not (preset / "staging").exists()
    finally:
        if where == "empty-inside":
            staging.rmdir()


def test_a_failed_write_removes_what_the_staging_wrote(preset, tmp_path, monkeypatch):
    staging = tmp_path / "new" / "staging"
    copy = shutil.copy2

    def full_disk(source, target):
        if Path(target).name == "model.weights.h5":
            raise OSError(28, "No space left on device")
        return copy(source, target)

    monkeypatch.setattr(shutil, "copy2", full_disk)
    with pytest.raises(ValueError, match=r"Cannot write the staging folder .*No space left on device"):
        stage_preset_for_hub(preset, "me/tiny", staging, model_class=RealNVP)
    assert not staging.exists()  # so that a second try is not refused as non-empty
    monkeypatch.setattr(shutil, "copy2", copy)
    assert [p.name for p in stage_preset_for_hub(preset, "me/tiny", staging, model_class=RealNVP)] == [
        "config.json", "metadata.json", "model.weights.h5", "README.md"]


# Handles.


@pytest.mark.parametrize(
    "handle, reason",
    [
        ("hf://a b/c d", "is not a valid Hub repo: Repo id must use alphanumeric chars"),
        ("hf://me/name.git", "is not a valid Hub repo: Repo_id cannot end by '.git'"),
        ("hf://me--you/name", "is not a valid Hub repo: Cannot have -- or .."),
        ("hf://me/" + "x" * 97, "is not a valid Hub repo"),
        ("hf://name", "A Hub handle is hf://owner/name"),
        ("hf://a/b/c", "A Hub handle is hf://owner/name"),
        ("me/name", "A Hub repo to publish to is hf://owner/name[@branch]"),
        ("hf://me/name@", "ends with '@' but names no branch"),
        ("hf://me/name@my branch", "names the branch 'my branch'"),
        ("hf://me/name@a..b", "names the branch 'a..b'"),
        ("hf://me/name@-x", "names the branch '-x'"),
        ("hf://me/name@refs/pr/1", "a commit or a git ref"),
        ("hf://me/name@" + "0123456789abcdef" * 2 + "01234567", "a commit or a git ref"),
    ],
)
def test_bad_handles_are_refused_before_anything_is_written(preset, tmp_path, capsys, hub, temporary, handle, reason):
    staging = tmp_path / "staging"
    for argv in ([preset, handle, "--dry-run", staging], [preset, handle]):
        status, _, err = _run_main(argv, capsys)
        assert status == 2 and len(err) == 1 and err[0].startswith("error: ") and reason in err[0], err
    assert not staging.exists() and list(temporary.iterdir()) == [] and hub == []


def test_good_handles_give_the_repo_id_and_branch(preset, tmp_path):
    assert hub_target("hf://me/tiny") == ("me/tiny", None)
    assert hub_target("hf://Org-1/model_v2.0@release/2024-01") == ("Org-1/model_v2.0", "release/2024-01")
    with pytest.raises(ValueError, match="the repo id must be owner/name, got 'tiny'"):
        stage_preset_for_hub(preset, "tiny", tmp_path / "staging", model_class=RealNVP)
    assert not (tmp_path / "staging").exists()


# Uploads (HfApi replaced by recorders).


@pytest.mark.parametrize("handle, branch, private", [("hf://me/tiny", None, False), ("hf://me/tiny@v1", "v1", True)])
def test_upload_goes_to_the_branch_of_the_handle(preset, capsys, hub, temporary, handle, branch, private):
    status, out, err = _run_main([preset, handle] + (["--private"] if private else []), capsys)
    assert status == 0, err
    expected = [("file_exists", "me/tiny", {"filename": "README.md", "revision": branch}),
                ("create_repo", "me/tiny", {"exist_ok": True, "private": private})]
    if branch:
        expected.append(("create_branch", "me/tiny", {"branch": branch, "exist_ok": True}))
    assert hub[:-1] == expected
    name, repo_id, upload = hub[-1]
    assert (name, repo_id, upload["revision"]) == ("upload_folder", "me/tiny", branch)
    assert upload["staged"]["names"] == upload["staged"]["uploaded"] == STAGED
    assert upload["staged"]["metadata"]["weights"] == {"published": True, "hf_handle": handle}
    assert f'RealNVP.from_preset("{handle}")' in upload["staged"]["card"]  # the card names the branch
    assert Path(upload["folder_path"]).parent == temporary
    assert list(temporary.iterdir()) == []  # the staging folder is gone
    assert out.splitlines() == [f"published {preset} to {handle}; load with RealNVP.from_preset({handle!r})",
                                f"model card: uploaded the generated README.md ({handle} had none)"]


@pytest.mark.parametrize("failure", [RuntimeError("401 Client Error: Unauthorized\nInvalid credentials"),
                                     KeyboardInterrupt()], ids=["hub-error", "interrupted"])
def test_a_failed_upload_still_removes_the_staging_folder(preset, capsys, hub, temporary, failure):
    hub.failure = failure
    if isinstance(failure, KeyboardInterrupt):
        with pytest.raises(KeyboardInterrupt):
            publish.main([str(preset), "hf://me/tiny@v1"])
    else:
        status, out, err = _run_main([preset, "hf://me/tiny@v1"], capsys)
        assert status == 2 and out == ""
        assert err == ["error: Uploading to hf://me/tiny@v1 failed: RuntimeError: 401 Client Error: Unauthorized "
                       "Invalid credentials"]
    assert [call[0] for call in hub] == ["file_exists", "create_repo", "create_branch", "upload_folder"]
    assert list(temporary.iterdir()) == []


# A card already on the Hub.


@pytest.mark.parametrize("handle", ["hf://me/tiny", "hf://me/tiny@v1"])
def test_a_card_already_on_the_hub_is_kept(preset, capsys, hub, temporary, handle):
    hub.card_on_hub = True
    status, out, err = _run_main([preset, handle], capsys)
    assert status == 0, err
    branch = handle.partition("@")[2] or None
    assert hub[0] == ("file_exists", "me/tiny", {"filename": "README.md", "revision": branch})
    upload = hub[-1][2]
    assert upload["ignore_patterns"] == ["README.md"]
    assert upload["staged"]["uploaded"] == ["config.json", "metadata.json", "model.weights.h5"]
    assert out.splitlines()[1] == (f"model card: kept the README.md already in {handle}; --replace-card uploads the "
                                   "generated one over it")
    assert list(temporary.iterdir()) == []


def test_replace_card_uploads_the_generated_card_over_the_one_on_the_hub(preset, capsys, hub, temporary):
    hub.card_on_hub = True
    status, out, err = _run_main([preset, "hf://me/tiny@v1", "--replace-card"], capsys)
    assert status == 0, err
    upload = hub[-1][2]
    assert upload["ignore_patterns"] is None and upload["staged"]["uploaded"] == STAGED
    assert out.splitlines()[1] == ("model card: replaced the README.md in hf://me/tiny@v1 with the generated one "
                                   "(--replace-card)")


def _hub_error(kind, message):
    """An instance of huggingface_hub's error `kind` without the HTTP response its __init__ wants."""
    return kind.__new__(kind, message)


@pytest.mark.parametrize("missing", ["RepositoryNotFoundError", "RevisionNotFoundError"])
def test_a_missing_repo_or_branch_has_no_card_so_the_generated_one_is_uploaded(preset, capsys, monkeypatch, missing):
    # The real HfApi.file_exists, answered by a Hub that has no such repo or branch.
    asked, uploads = [], []

    def get_hf_file_metadata(url, **kwargs):
        asked.append(url)
        raise _hub_error(getattr(huggingface_hub.errors, missing), f"404 {missing}")

    monkeypatch.setattr(huggingface_hub.file_download, "get_hf_file_metadata", get_hf_file_metadata)
    for name in ("create_repo", "create_branch"):
        monkeypatch.setattr(huggingface_hub.HfApi, name, lambda self, repo_id, **kwargs: None)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", lambda self, **kwargs: uploads.append(kwargs))
    status, out, err = _run_main([preset, "hf://me/tiny@v1"], capsys)
    assert status == 0, err
    assert len(asked) == 1 and asked[0].endswith("/me/tiny/resolve/v1/README.md")
    assert uploads[0]["ignore_patterns"] is None and uploads[0]["revision"] == "v1"
    assert out.splitlines()[1] == "model card: uploaded the generated README.md (hf://me/tiny@v1 had none)"


def test_a_failed_card_check_uploads_nothing(preset, capsys, hub, temporary):
    hub.card_on_hub = ConnectionError("Connection refused")
    status, out, err = _run_main([preset, "hf://me/tiny"], capsys)
    assert status == 2 and out == ""
    assert err == ["error: Cannot check whether hf://me/tiny already has a README.md: ConnectionError: "
                   "Connection refused"]
    assert [call[0] for call in hub] == ["file_exists"] and list(temporary.iterdir()) == []


# What the card says of the run.


def test_a_run_on_a_local_folder_is_published_as_such(tmp_path, capsys, hub):
    preset = _preset_folder(tmp_path / "preset", str(tmp_path / "my_folder"))
    staging = tmp_path / "staging"
    status, _, err = _run_main([preset, "hf://me/tiny", "--dry-run", staging], capsys)
    assert status == 0, err
    text = (staging / "README.md").read_text()
    card = huggingface_hub.ModelCard(text)
    assert card.data.datasets is None and card.data.eval_results[0].dataset_name == "a local image folder"
    assert "Trained on a local image folder for 2 steps, 1 epoch, batch size 8" in text
    assert "my_folder" not in text and "embedded photo patches" not in text


def test_a_preset_without_a_training_record_is_refused_with_nothing_written(tmp_path, capsys, hub, temporary):
    preset = _preset_folder(tmp_path / "preset", "embedded")
    metadata = json.loads((preset / "metadata.json").read_text())
    del metadata["trained"]
    (preset / "metadata.json").write_text(json.dumps(metadata))
    staging = tmp_path / "staging"
    for argv in ([preset, "hf://me/tiny", "--dry-run", staging], [preset, "hf://me/tiny"]):
        status, out, err = _run_main(argv, capsys)
        assert status == 2 and out == "" and len(err) == 1
        assert err[0].startswith(f"error: {preset}: The preset's metadata.json has no 'trained' entry")
    assert not staging.exists() and list(temporary.iterdir()) == [] and hub == []


def test_a_bad_preset_folder_is_refused_and_leaves_no_temporary_folder(preset, tmp_path, capsys, hub, temporary):
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    for name in ("config.json", "metadata.json"):
        shutil.copy2(preset / name, untrained / name)
    status, _, err = _run_main([untrained, "hf://me/tiny"], capsys)
    assert status == 2 and err == [f"error: {untrained} has no model.weights.h5; publish a trained preset folder."]
    status, _, err = _run_main([tmp_path / "nothing", "hf://me/tiny"], capsys)
    assert status == 2 and err[0].startswith(f"error: There is no preset folder at {tmp_path / 'nothing'}")
    assert list(temporary.iterdir()) == [] and hub == []


# The tool as a command.


@pytest.mark.parametrize(
    "case", ["missing-argument", "bad-handle", "non-empty-folder", "no-preset-folder"],
)
def test_command_line_errors_are_one_line_and_exit_status_2(preset, tmp_path, case):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "README.md").write_text("mine\n")
    argv, expected = {
        "missing-argument": ([preset], "error: the following arguments are required: handle"),
        "bad-handle": ([preset, "hf://a b/c d"], "error: 'hf://a b/c d' is not a valid Hub repo"),
        "non-empty-folder": ([preset, "hf://me/tiny", "--dry-run", occupied], "error: The staging folder"),
        "no-preset-folder": ([tmp_path / "nope", "hf://me/tiny"], "error: There is no preset folder"),
    }[case]
    result = subprocess.run([*COMMAND, *map(str, argv)], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()  # TensorFlow may log to stderr before the error
    assert lines[-1].startswith(expected) and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert [line for line in lines if line.startswith("error:")] == lines[-1:] and result.stdout == ""
    assert (occupied / "README.md").read_text() == "mine\n"


def test_the_tool_docstring_examples_run(capsys):
    results = doctest.testmod(publish, optionflags=doctest.ELLIPSIS)
    assert results.attempted >= 8 and results.failed == 0, capsys.readouterr().out[-3000:]
