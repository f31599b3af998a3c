"""Which rows of a Hub dataset are trained on and which are held out: the split names and every-Nth rows."""

import numpy as np


def hub_split(source: str, dataset_spec: dict, split: str) -> tuple[str, int | None]:
    """The Hub split to read for `split` ("train" or "eval"), and `held_out_every` when the held-out rows come from it.

    The split is the spec's `train_split` / `eval_split`; a spec with `held_out_every` and no
    `eval_split` holds every `held_out_every`-th row of its training split out (the last of
    each group), and the second value is then that number, else `None`.

    Example:

    >>> hub_split("some/celeba", {"train_split": "train", "eval_split": "valid"}, "eval")
    ('valid', None)
    >>> hub_split("some/bedrooms", {"held_out_every": 50}, "eval")
    ('train', 50)
    """
    split_name = dataset_spec.get("train_split" if split == "train" else "eval_split")
    every = dataset_spec.get("held_out_every")
    if split_name is None and every:
        split_name = dataset_spec.get("train_split", "train")
    if split_name is None:
        raise ValueError(f"The dataset spec names no {split} split for {source}.")
    return split_name, (every if dataset_spec.get("eval_split") is None and every else None)


def split_rows(count: int, every: int, split: str) -> np.ndarray:
    """The rows of a split of `count` rows whose every `every`-th one (the last of each group) is held out.

    Example:

    >>> split_rows(6, 3, "eval").tolist(), split_rows(6, 3, "train").tolist()
    ([2, 5], [0, 1, 3, 4])
    """
    rows = np.arange(count)
    held_out = rows % every == every - 1
    return rows[held_out] if split == "eval" else rows[~held_out]
