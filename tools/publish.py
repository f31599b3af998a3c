"""Publish a preset folder to the Hugging Face Hub, with a model card.

    python tools/publish.py runs/default/preset hf://your-name/realnvp-celeba64
    python tools/publish.py runs/default/preset hf://your-name/realnvp-celeba64@v1
    python tools/publish.py runs/default/preset hf://your-name/realnvp-celeba64 --dry-run staging/

The card (README.md) has `library_name: keras`, tags, the dataset, the measured held-out
bits/dim next to the paper's, and how to load the model. The staged `metadata.json` records
the handle the weights are published at.

`--dry-run FOLDER` writes exactly the files that would be uploaded (config.json, metadata.json,
model.weights.h5, README.md) into FOLDER and uploads nothing. FOLDER must be new or empty, and
outside the preset folder: a file, a folder that holds anything, or the preset folder itself
(or a folder inside it) is refused, so no file of yours is ever overwritten. Without
`--dry-run`, the files are staged in a temporary folder, which is removed afterwards whether
the upload succeeded or not.

`hf://owner/name@branch` uploads to that branch, creating it (from the default branch) if the
repo does not have it yet; `RealNVP.from_preset("hf://owner/name@branch")` then loads it.
Without `@branch` the upload goes to the default branch. The repo id is checked as the Hub
checks it, and the branch must be a branch name (not a commit hash or a `refs/` path).

Uploading uses `huggingface_hub` (log in with `hf auth login`, `huggingface-cli login` before
huggingface_hub 0.34, or set HF_TOKEN). Every error (bad arguments, a bad preset folder or
staging folder, a failed upload) is one line `error: ...` on stderr and exit status 2.
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
    >>> args.handle, str(args.dry_run), args.private
    ('hf://me/x@v1', 'staging', False)
    """
    parser = _Parser(prog="publish.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset_dir", type=Path, help="preset folder written by tools/train.py (output/preset)")
    parser.add_argument("handle", help="hf://owner/name[@branch] to publish to")
    parser.add_argument("--dry-run", type=Path, default=None, metavar="FOLDER",
                        help="write the files that would be uploaded into FOLDER (new or empty); upload nothing")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
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
    from keras_realnvp.presets.model_card import hub_target, stage_preset_for_hub

    repo_id, branch = hub_target(args.handle)
    handle = f"hf://{repo_id}" + (f"@{branch}" if branch else "")
    if args.dry_run is not None:
        files = stage_preset_for_hub(args.preset_dir, repo_id, args.dry_run, revision=branch)
        where = f" (branch {branch}, created if missing)" if branch else ""
        print(f"dry run: would upload to {handle}{where}:")
        for path in files:
            print(f"  {path.name} ({path.stat().st_size} bytes)")
        return files
    staging = Path(tempfile.mkdtemp(prefix="realnvp-publish-"))
    try:
        files = stage_preset_for_hub(args.preset_dir, repo_id, staging, revision=branch)
        _upload(staging, repo_id, branch, args.private, handle)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"published {args.preset_dir} to {handle}; load with RealNVP.from_preset({handle!r})")
    return files


def _upload(folder, repo_id, branch, private, handle):
    import huggingface_hub

    api = huggingface_hub.HfApi()
    try:
        api.create_repo(repo_id, exist_ok=True, private=private)
        if branch:
            api.create_branch(repo_id, branch=branch, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, revision=branch,
                          commit_message="Upload keras_realnvp preset")
    # Whatever the Hub or the network answers (no token, no access, no connection...) is the
    # user's to fix, not a bug of this tool: one line with huggingface_hub's reason.
    except Exception as error:
        raise ValueError(f"Uploading to {handle} failed: {type(error).__name__}: {error}") from None


def _fail(message):
    print("error: " + " ".join(str(message).splitlines()), file=sys.stderr)
    raise SystemExit(EXIT_ERROR)


if __name__ == "__main__":
    main()
