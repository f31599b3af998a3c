"""Publish a preset folder to the Hugging Face Hub, with a model card.

    python tools/publish.py runs/default/preset hf://your-name/realnvp-celeba64
    python tools/publish.py runs/default/preset hf://your-name/realnvp-celeba64 --dry-run staging/

The card (README.md) has `library_name: keras`, tags, the dataset, the measured held-out
bits/dim next to the paper's, and how to load the model. `--dry-run FOLDER` writes exactly
the files that would be uploaded into FOLDER and uploads nothing. Uploading uses
`huggingface_hub` (log in with `huggingface-cli login` or set HF_TOKEN).
"""

import argparse
import shutil
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if (_ROOT / "keras_realnvp").is_dir() and str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset_dir", type=Path, help="preset folder written by tools/train.py (output/preset)")
    parser.add_argument("handle", help="hf://owner/repo to publish to")
    parser.add_argument("--dry-run", type=Path, default=None, metavar="FOLDER",
                        help="write the files that would be uploaded into FOLDER; upload nothing")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from keras_realnvp.presets.model_card import stage_preset_for_hub
    from keras_realnvp.presets.resolve import parse_hf_handle

    try:
        repo_id, _ = parse_hf_handle(args.handle)
        staging = args.dry_run or Path(_temporary_folder())
        files = stage_preset_for_hub(args.preset_dir, repo_id, staging)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    if args.dry_run:
        print(f"dry run: would upload to {args.handle}:")
        for path in files:
            print(f"  {path.name} ({path.stat().st_size} bytes)")
        return files
    import huggingface_hub

    api = huggingface_hub.HfApi()
    api.create_repo(repo_id, exist_ok=True, private=args.private)
    api.upload_folder(folder_path=str(staging), repo_id=repo_id, commit_message="Upload keras_realnvp preset")
    shutil.rmtree(staging, ignore_errors=True)
    print(f"published {args.preset_dir} to {args.handle}; load with RealNVP.from_preset({args.handle!r})")
    return files


def _temporary_folder():
    import tempfile

    return tempfile.mkdtemp(prefix="realnvp-publish-")


if __name__ == "__main__":
    main()
