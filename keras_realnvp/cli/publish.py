"""Publish a trained preset folder to the Hugging Face Hub, with a model card.

    keras-realnvp publish runs/default/preset hf://your-name/realnvp-celeba64
    keras-realnvp publish runs/default/preset hf://your-name/realnvp-celeba64@v1
    keras-realnvp publish runs/default/preset hf://your-name/realnvp-celeba64 --dry-run staging/

(in a checkout, `python tools/publish.py ...` is the same command.)

The preset folder must be one a training run wrote (`keras-realnvp train`'s OUTPUT/preset): the card is
written from what the run recorded in its metadata (`trained`), and a preset without that
record is refused. The card (README.md) has the Hub metadata (`library_name: keras`,
`pipeline_tag: unconditional-image-generation`, tags, license, the Hub dataset the run trained
on, and a model-index with the held-out bits/dim), names the data the run actually trained on (a
local folder only as "a local image folder"), the paper's bits/dim where the run trained on the
preset's own dataset, the objective, and how to load the model: `RealNVP.from_preset` and
`keras.saving.load_model` after `import keras_realnvp`. The staged `metadata.json` records the
handle the weights are published at.

`--dry-run FOLDER` writes exactly the files that would be uploaded (config.json, metadata.json,
model.weights.h5, README.md) into FOLDER and uploads nothing. FOLDER must be new or empty, and
outside the preset folder: a file, a folder that holds anything, or the preset folder itself
(or a folder inside it) is refused, so no file of yours is ever overwritten. Without
`--dry-run`, the files are staged in a temporary folder, which is removed afterwards whether
the upload succeeded or not.

A README.md already in the repo (at that branch) is kept: the upload leaves the generated card
out, so that a card edited on the Hub is not overwritten by the next upload of the weights.
`--replace-card` uploads the generated card over it. The output says which happened.

`hf://owner/name@branch` uploads to that branch, creating it (from the default branch) if the
repo does not have it yet; `RealNVP.from_preset("hf://owner/name@branch")` then loads it.
Without `@branch` the upload goes to the default branch. The repo id is checked as the Hub
checks it, and the branch must be a branch name (not a commit hash or a `refs/` path).

Uploading uses `huggingface_hub`: log in with `hf auth login`, or set HF_TOKEN. Every error
(bad arguments, a bad preset folder or staging folder, a failed upload) is one line
`error: ...` on stderr and exit status 2.
"""

import argparse
import shutil
import tempfile
from pathlib import Path

from keras_realnvp.cli.arguments import ArgumentParser, fail, prog

EXIT_ERROR = 2


def parse_args(argv=None):
    """The command line of `keras-realnvp publish`; a bad one is a one-line error and exit status 2.

    Example:

    >>> args = parse_args(["runs/x/preset", "hf://me/x@v1", "--dry-run", "staging"])
    >>> args.handle, str(args.dry_run), args.private, args.replace_card
    ('hf://me/x@v1', 'staging', False, False)
    """
    parser = ArgumentParser(prog=prog("publish"), description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset_dir", type=Path, help="preset folder written by keras-realnvp train (OUTPUT/preset)")
    parser.add_argument("handle", help="hf://owner/name[@branch] to publish to")
    parser.add_argument("--dry-run", type=Path, default=None, metavar="FOLDER",
                        help="write the files that would be uploaded into FOLDER (new or empty); upload nothing")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--replace-card", action="store_true",
                        help="upload the generated README.md even where the repo (branch) already has one")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Stage the preset folder and upload it (or, with `--dry-run`, only stage it); returns 0.

    Errors print one line `error: ...` on stderr and exit with status 2.

    Example:

    >>> import tempfile
    >>> from pathlib import Path
    >>> from keras_realnvp.hub import builtin_preset_path
    >>> staging = Path(tempfile.mkdtemp()) / "staging"
    >>> main([str(builtin_preset_path("embedded_16")), "hf://me/tiny@v1", "--dry-run", str(staging)])
    ... # doctest: +ELLIPSIS
    dry run: would upload to hf://me/tiny@v1 (branch v1, created if missing):
      config.json (... bytes)
      ...
    0
    >>> sorted(p.name for p in staging.iterdir())
    ['README.md', 'config.json', 'metadata.json', 'model.weights.h5']
    """
    args = parse_args(argv)
    try:
        run(args)
    except ValueError as error:
        fail(error, EXIT_ERROR)
    return 0


def run(args) -> list:
    """Publish as the parsed command line `args` says; returns the staged paths.

    After an upload the paths name files of the temporary staging folder, which is removed
    by then. A bad preset folder, staging folder or handle, or a failed upload, raises `ValueError`.
    """
    from keras_realnvp import RealNVP
    from keras_realnvp.hub.publishing import (
        CARD_KEPT,
        CARD_NEW,
        hub_target,
        stage_preset_for_hub,
        upload_preset_folder,
    )

    repo_id, branch = hub_target(args.handle)
    handle = f"hf://{repo_id}" + (f"@{branch}" if branch else "")
    if args.dry_run is not None:
        files = stage_preset_for_hub(args.preset_dir, repo_id, args.dry_run, revision=branch, model_class=RealNVP)
        where = f" (branch {branch}, created if missing)" if branch else ""
        print(f"dry run: would upload to {handle}{where}:")
        for path in files:
            print(f"  {path.name} ({path.stat().st_size} bytes)")
        if not args.replace_card:
            print(f"  (README.md only if {handle} has none yet; --replace-card uploads it over one)")
        return files
    staging = Path(tempfile.mkdtemp(prefix="realnvp-publish-"))
    try:
        files = stage_preset_for_hub(args.preset_dir, repo_id, staging, revision=branch, model_class=RealNVP)
        card = upload_preset_folder(staging, repo_id, branch, private=args.private, replace_card=args.replace_card)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"published {args.preset_dir} to {handle}; load with RealNVP.from_preset({handle!r})")
    if card == CARD_KEPT:
        print(f"model card: kept the README.md already in {handle}; --replace-card uploads the generated one over it")
    elif card == CARD_NEW:
        print(f"model card: uploaded the generated README.md ({handle} had none)")
    else:
        print(f"model card: replaced the README.md in {handle} with the generated one (--replace-card)")
    return files

