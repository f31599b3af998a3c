"""Publishing a trained preset to the Hub: the checked target, the staged files, the upload."""

import json
import re
import shutil
from pathlib import Path

from keras_realnvp.hub.model_card import CARD_FILE, model_card
from keras_realnvp.hub.preset_folder import (
    CONFIG_FILE,
    METADATA_FILE,
    WEIGHTS_FILE,
    read_metadata,
    read_model_config,
)
from keras_realnvp.hub.resolve import HF_PREFIX, parse_hf_handle

# What `stage_preset_for_hub` writes, in the order it lists them.
STAGED_FILES = (CONFIG_FILE, METADATA_FILE, WEIGHTS_FILE, CARD_FILE)
# What `upload_preset_folder` did with the model card.
CARD_NEW, CARD_REPLACED, CARD_KEPT = "new", "replaced", "kept"
# A conservative subset of git's branch names (git check-ref-format) that the Hub accepts.
_BRANCH = re.compile(r"(?=.{1,200}$)[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*")
_COMMIT = re.compile(r"[0-9a-f]{40}")


def hub_target(handle: str) -> tuple[str, str | None]:
    """The repo id and branch that `keras-realnvp publish` uploads `hf://owner/name[@branch]` to.

    The repo id is checked as huggingface_hub checks it (`validate_repo_id`) and must be
    `owner/name`; the branch (optional, `None` for the default branch) must be a branch name,
    not a commit or a `refs/` path. Anything else is a `ValueError` that names the problem.

    Example:

    >>> hub_target("hf://keras-realnvp/celeba_64@v1")
    ('keras-realnvp/celeba_64', 'v1')
    >>> hub_target("hf://a b/c d")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: 'hf://a b/c d' is not a valid Hub repo: Repo id must use alphanumeric chars, ...
    """
    if not isinstance(handle, str) or not handle.startswith(HF_PREFIX):
        raise ValueError(f"A Hub repo to publish to is hf://owner/name[@branch], got {handle!r}.")
    if handle.endswith("@"):  # parse_hf_handle reads an empty revision as the default branch
        raise ValueError(f"{handle!r} ends with '@' but names no branch; drop the '@' for the default branch.")
    try:
        repo_id, revision = parse_hf_handle(handle)
    except ValueError as error:
        raise ValueError(f"{error} Publishing needs hf://owner/name[@branch].") from None
    _check_repo_id(repo_id, handle)
    if revision is not None:
        _check_branch(revision, handle)
    return repo_id, revision


def _handle(repo_id, revision):
    return f"{HF_PREFIX}{repo_id}" + (f"@{revision}" if revision is not None else "")


def _check_repo_id(repo_id, handle):
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise ValueError(f"{handle!r} is not a valid Hub repo: the repo id must be owner/name, got {repo_id!r}.")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"{handle!r} is not a valid Hub repo: {error}") from None


def _check_branch(branch, handle):
    if not isinstance(branch, str) or not _BRANCH.fullmatch(branch) or ".." in branch or branch.endswith(".lock"):
        raise ValueError(
            f"{handle!r} names the branch {branch!r}; a branch name is letters, digits, '.', '_', '-' and '/' "
            "(each part starting with a letter, digit or '_', no '..', at most 200 characters)."
        )
    if branch.startswith("refs/") or _COMMIT.fullmatch(branch):
        raise ValueError(
            f"{handle!r} names {branch!r}, a commit or a git ref; publishing uploads to a branch "
            "(created if it does not exist), so name one, e.g. hf://owner/name@v1."
        )


def _check_staging(staging: Path, preset_dir: Path):
    """Refuse any staging folder where writing could overwrite files that are not ours."""
    if staging.exists() and not staging.is_dir():
        raise ValueError(f"The staging folder {staging} is a file; name a new or empty folder.")
    target, source = staging.resolve(), preset_dir.resolve()
    if target == source or source in target.parents:
        raise ValueError(
            f"The staging folder {staging} is the preset folder being published {preset_dir} or inside it; "
            "name a new or empty folder outside it."
        )
    if staging.is_dir():
        present = sorted(p.name for p in staging.iterdir())
        if present:
            shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
            raise ValueError(
                f"The staging folder {staging} is not empty (it holds {shown}); staging writes "
                f"{', '.join(STAGED_FILES)} only into a new or empty folder, so that no file of yours is overwritten."
            )


def stage_preset_for_hub(preset_dir, repo_id: str, staging, revision: str | None = None, *,
                         model_class) -> list[Path]:
    """Copy a trained preset folder and its model card into `staging`: exactly what gets uploaded.

    The preset folder is checked first (a readable config, metadata with the `trained` record
    of its run, and a weights file), and so are `repo_id` (`owner/name`, as the Hub accepts it)
    and `revision` (the branch it goes to, recorded in the staged metadata's `hf_handle` and
    used in the card's loading examples). The card is written before anything else, so a preset
    it cannot describe is refused with nothing written. `staging` must be a new or empty folder
    outside the preset folder: nothing that is already there is ever overwritten. If writing
    fails, the files written so far are removed again. `model_class` (`RealNVP`) is the class
    the config must describe.

    Example:

    >>> import tempfile
    >>> from pathlib import Path
    >>> from keras_realnvp import RealNVP
    >>> from keras_realnvp.hub import builtin_preset_path
    >>> staging = Path(tempfile.mkdtemp()) / "staging"
    >>> embedded = builtin_preset_path("embedded_16")
    >>> [p.name for p in stage_preset_for_hub(embedded, "me/tiny", staging, "v1", model_class=RealNVP)]
    ['config.json', 'metadata.json', 'model.weights.h5', 'README.md']
    >>> read_metadata(staging)["weights"]["hf_handle"]
    'hf://me/tiny@v1'
    >>> stage_preset_for_hub(embedded, "me/tiny", staging, model_class=RealNVP)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: The staging folder ... is not empty (it holds README.md, config.json, ...
    """
    preset_dir, staging = Path(preset_dir), Path(staging)
    handle = _handle(repo_id, revision)
    _check_repo_id(repo_id, handle)
    if revision is not None:
        _check_branch(revision, handle)
    if not preset_dir.is_dir():
        raise ValueError(
            f"There is no preset folder at {preset_dir}; pass the folder `keras-realnvp train` wrote (OUTPUT/preset)."
        )
    config = read_model_config(preset_dir, model_class)
    metadata = read_metadata(preset_dir)
    if not (preset_dir / WEIGHTS_FILE).is_file():
        raise ValueError(f"{preset_dir} has no {WEIGHTS_FILE}; publish a trained preset folder.")
    try:
        card = model_card(metadata, config, repo_id, revision)
    except ValueError as error:
        raise ValueError(f"{preset_dir}: {error}") from None
    _check_staging(staging, preset_dir)
    created = not staging.exists()
    # The staged metadata tells `resolve_preset` where the weights now live.
    metadata = {**metadata, "weights": {"published": True, "hf_handle": handle}}
    written = {
        CONFIG_FILE: lambda path: shutil.copy2(preset_dir / CONFIG_FILE, path),
        METADATA_FILE: lambda path: path.write_text(json.dumps(metadata, indent=2) + "\n"),
        WEIGHTS_FILE: lambda path: shutil.copy2(preset_dir / WEIGHTS_FILE, path),
        CARD_FILE: lambda path: path.write_text(card, encoding="utf-8"),
    }
    files = []
    try:
        staging.mkdir(parents=True, exist_ok=True)
        for name in STAGED_FILES:
            files.append(staging / name)
            written[name](files[-1])
    except OSError as error:
        # A half-written folder would be refused as non-empty on the next try.
        for path in files:
            path.unlink(missing_ok=True)
        if created:
            shutil.rmtree(staging, ignore_errors=True)
        raise ValueError(f"Cannot write the staging folder {staging}: {error}") from None
    return files


def upload_preset_folder(folder, repo_id: str, revision: str | None = None, private: bool = False,
                         replace_card: bool = False, api=None) -> str:
    """Upload a staged folder to `repo_id` (at branch `revision`), keeping a model card already there.

    The repo is created if missing (`private` then applies), and so is the branch (from the
    default branch). Before that, the Hub is asked whether the repo has a README.md at that
    branch (a missing repo or branch has none): if it has, the staged README.md is left out of
    the upload, so that a card edited on the Hub survives a new upload of the weights, unless
    `replace_card`. Returns what happened to the card: `"new"` (there was none), `"replaced"`
    or `"kept"`. Any failure of the Hub or the network is a `ValueError` with huggingface_hub's
    reason. `api` is a `huggingface_hub.HfApi` (default: a new one).

    Example:

    >>> class Hub:  # stands in for huggingface_hub.HfApi: a repo that already has a card
    ...     def file_exists(self, repo_id, filename, revision=None):
    ...         return filename == "README.md"
    ...     def create_repo(self, repo_id, exist_ok, private):
    ...         pass
    ...     def upload_folder(self, folder_path, repo_id, revision, commit_message, ignore_patterns):
    ...         print("left out:", ignore_patterns)
    >>> upload_preset_folder("staging", "me/tiny", api=Hub())
    left out: ['README.md']
    'kept'
    >>> upload_preset_folder("staging", "me/tiny", replace_card=True, api=Hub())
    left out: None
    'replaced'
    """
    handle = _handle(repo_id, revision)
    if api is None:
        import huggingface_hub

        api = huggingface_hub.HfApi()
    # Whatever the Hub or the network answers (no token, no access, no connection...) is the
    # user's to fix, not a bug: one line with huggingface_hub's reason.
    try:
        # Asked before the branch is created: a new branch starts as a copy of the default one,
        # whose card describes that branch's model, not this one.
        has_card = api.file_exists(repo_id, CARD_FILE, revision=revision)
    except Exception as error:
        raise ValueError(
            f"Cannot check whether {handle} already has a {CARD_FILE}: {type(error).__name__}: {error}"
        ) from None
    keep_card = has_card and not replace_card
    try:
        api.create_repo(repo_id, exist_ok=True, private=private)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, revision=revision,
                          commit_message="Upload keras_realnvp preset",
                          ignore_patterns=[CARD_FILE] if keep_card else None)
    except Exception as error:
        raise ValueError(f"Uploading to {handle} failed: {type(error).__name__}: {error}") from None
    return CARD_KEPT if keep_card else CARD_REPLACED if has_card else CARD_NEW
