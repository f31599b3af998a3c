"""Turning a preset handle into a local folder: path, built-in name, or `hf://owner/repo`."""

import os
from pathlib import Path

from keras_realnvp.hub.preset_folder import CONFIG_FILE, METADATA_FILE, WEIGHTS_FILE
from keras_realnvp.hub.registry import builtin_preset_names, builtin_preset_path, preset_metadata

HF_PREFIX = "hf://"


def parse_hf_handle(handle: str) -> tuple[str, str | None]:
    """`"hf://owner/name@revision"` -> `("owner/name", "revision")` (revision optional).

    Example:

    >>> parse_hf_handle("hf://keras-realnvp/celeba_64@v1")
    ('keras-realnvp/celeba_64', 'v1')
    """
    if not handle.startswith(HF_PREFIX):
        raise ValueError(f"A Hub handle starts with {HF_PREFIX!r}, got {handle!r}.")
    repo, _, revision = handle[len(HF_PREFIX) :].partition("@")
    parts = repo.split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"A Hub handle is hf://owner/name, got {handle!r}.")
    return repo, revision or None


def download_from_hub(handle: str, need_weights: bool = True) -> Path:
    """Fetch a preset's files with `huggingface_hub.hf_hub_download`; returns their folder.

    The Hub's cache and `HF_HUB_OFFLINE=1` behave as usual: files already cached are
    used without a network call.
    """
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    repo_id, revision = parse_hf_handle(handle)
    files = [CONFIG_FILE, METADATA_FILE] + ([WEIGHTS_FILE] if need_weights else [])
    folder = None
    for filename in files:
        try:
            path = huggingface_hub.hf_hub_download(repo_id, filename, revision=revision)
        except EntryNotFoundError as error:
            if isinstance(error, LocalEntryNotFoundError):  # offline or unreachable, and not cached
                raise ValueError(_download_error(handle, filename, error)) from None
            if filename == METADATA_FILE:
                continue  # optional
            raise ValueError(f"The Hub repo {handle} has no {filename}; it is not a keras_realnvp preset.") from None
        except Exception as error:  # missing repo, no access, network...
            raise ValueError(_download_error(handle, filename, error)) from None
        folder = Path(path).parent
    return folder


def _download_error(handle, filename, error):
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    why = " (HF_HUB_OFFLINE is set and the file is not in the cache)" if offline else ""
    return f"Cannot download {filename} of {handle}{why}: {type(error).__name__}: {error}"


def resolve_preset(handle, need_weights: bool = True) -> Path:
    """The local folder of a preset handle, in this order:

    1. an existing local folder (never shadowed by a built-in name);
    2. a built-in name (`RealNVP.presets`): its packaged config, and its weights from
       the package or from the Hub repo its metadata names;
    3. `hf://owner/repo[@revision]`, downloaded file by file into the Hub cache.

    Anything else raises a `ValueError` that lists the built-in names.

    Example:

    >>> resolve_preset("imagenet_32", need_weights=False).name
    'imagenet_32'
    """
    text = os.fspath(handle)
    if Path(text).is_dir():
        return Path(text)
    names = builtin_preset_names()
    if text in names:
        folder = builtin_preset_path(text)
        if not need_weights or (folder / WEIGHTS_FILE).is_file():
            return folder
        weights = preset_metadata(text).get("weights", {})
        hub = weights.get("hf_handle")
        if not weights.get("published") or not hub:
            raise ValueError(
                f"The weights of preset {text!r} are not published yet. "
                f"RealNVP.from_preset({text!r}, load_weights=False) builds the untrained architecture; "
                f"`keras-realnvp train --preset {text} --dataset SOURCE` trains it."
            )
        try:
            hub_folder = download_from_hub(hub, need_weights=True)
        except ValueError as error:
            raise ValueError(
                f"The weights of preset {text!r} are published at {hub} but could not be fetched: {error}. "
                f"RealNVP.from_preset({text!r}, load_weights=False) builds the untrained architecture."
            ) from None
        return hub_folder
    if text.startswith(HF_PREFIX):
        return download_from_hub(text, need_weights=need_weights)
    looks_like_path = os.sep in text or "/" in text or text.startswith(".")
    where = f"There is no preset folder at {text!r}. " if looks_like_path else ""
    raise ValueError(
        f"Unknown preset {text!r}. {where}Built-in presets: {', '.join(names)}; "
        "or pass a local preset folder, or hf://owner/repo."
    )
