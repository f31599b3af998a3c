"""Publish a trained preset folder to the Hugging Face Hub, with a model card.

    python tools/publish.py runs/default/preset hf://your-name/realnvp-celeba64
    python tools/publish.py runs/default/preset hf://your-name/realnvp-celeba64@v1
    python tools/publish.py runs/default/preset hf://your-name/realnvp-celeba64 --dry-run staging/

The preset folder must be one a training run wrote (tools/train.py's OUTPUT/preset): the card is
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
import sys
import tempfile
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if (_ROOT / "keras_realnvp").is_dir() and str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

EXIT_ERROR = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse's usage block would make a second line; every error of this tool is one line.
        _fail(f"{message} (see {self.prog} --help)")


def parse_args(argv=None):
    """The command line of `tools/publish.py`; a bad one is a one-line error and exit status 2.

    Example:

    >>> args = parse_args(["runs/x/preset", "hf://me/x@v1", "--dry-run", "staging"])
    >>> args.handle, str(args.dry_run), args.private, args.replace_card
    ('hf://me/x@v1', 'staging', False, False)
    """
    parser = _Parser(prog="publish.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset_dir", type=Path, help="preset folder written by tools/train.py (output/preset)")
    parser.add_argument("handle", help="hf://owner/name[@branch] to publish to")
    parser.add_argument("--dry-run", type=Path, default=None, metavar="FOLDER",
                        help="write the files that would be uploaded into FOLDER (new or empty); upload nothing")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--replace-card", action="store_true",
                        help="upload the generated README.md even where the repo (branch) already has one")
    return parser.parse_args(argv)


def main(argv=None):
    """Stage the preset folder and upload it (or, with `--dry-run`, only stage it); returns the staged paths.

    Errors print one line `error: ...` on stderr and exit with status 2. After an upload the
    paths name files of the temporary folder, which is removed by then.

    Example:

    >>> import tempfile
    >>> from pathlib import Path
    >>> from keras_realnvp.presets import builtin_preset_path
    >>> staging = Path(tempfile.mkdtemp()) / "staging"
    >>> files = main([str(builtin_preset_path("embedded_16")), "hf://me/tiny@v1", "--dry-run", str(staging)])
    ... # doctest: +ELLIPSIS
    dry run: would upload to hf://me/tiny@v1 (branch v1, created if missing):
      config.json (... bytes)
      ...
    >>> sorted(p.name for p in staging.iterdir())
    ['README.md', 'config.json', 'metadata.json', 'model.weights.h5']
    """
    args = parse_args(argv)
    try:
        return _publish(args)
    except ValueError as error:
        _fail(str(error))


def _publish(args):
    from keras_realnvp.presets.publishing import (
        CARD_KEPT,
        CARD_NEW,
        hub_target,
        stage_preset_for_hub,
        upload_preset_folder,
    )

    repo_id, branch = hub_target(args.handle)
    handle = f"hf://{repo_id}" + (f"@{branch}" if branch else "")
    if args.dry_run is not None:
        files = stage_preset_for_hub(args.preset_dir, repo_id, args.dry_run, revision=branch)
        where = f" (branch {branch}, created if missing)" if branch else ""
        print(f"dry run: would upload to {handle}{where}:")
        for path in files:
            print(f"  {path.name} ({path.stat().st_size} bytes)")
        if not args.replace_card:
            print(f"  (README.md only if {handle} has none yet; --replace-card uploads it over one)")
        return files
    staging = Path(tempfile.mkdtemp(prefix="realnvp-publish-"))
    try:
        files = stage_preset_for_hub(args.preset_dir, repo_id, staging, revision=branch)
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


def _fail(message):
    print("error: " + " ".join(str(message).splitlines()), file=sys.stderr)
    raise SystemExit(EXIT_ERROR)


if __name__ == "__main__":
    main()
