"""The conditional Real NVP of appendix F: labels in log_prob/encode/decode/sample, fit, attribute swaps.

A tiny 2-scale model (8x8x3, 4 hidden maps, 1 block, 2 classes) with randomized weights.
Tolerances: round trips 1e-3 pixel levels (float32); the same decode batched differently
1e-4.
"""

import keras
import numpy as np
import pytest
from helpers import randomize_weights, to_numpy

from keras_realnvp import RealNVP, experiments
from keras_realnvp.data import dequantize_numpy, embedded_patch_origins, load_embedded_patches
from keras_realnvp.visualization import image_grid

ROUND_TRIP = 1e-3
SAME = 1e-4


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1, label_dim=2, seed=0)
    randomize_weights(model, seed=6)
    return model


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(8).uniform(0.0, 256.0, (4, 8, 8, 3)).astype("float32")


LABELS = experiments.one_hot([0, 1, 1, 0], 2)
SWAPPED = experiments.one_hot([1, 0, 0, 1], 2)


def test_encode_decode_with_the_same_labels_is_the_identity(model, images):
    latents = model.encode(images, labels=LABELS)
    error = np.abs(to_numpy(model.decode(latents, labels=LABELS)) - images).max()
    assert error < ROUND_TRIP, f"{error} pixel levels"
    same = experiments.swap_attributes(model, images, LABELS, LABELS)
    assert np.abs(same - images).max() < ROUND_TRIP
    assert np.abs(experiments.compress(model, images, 1.0, seed=0, labels=LABELS) - images).max() < ROUND_TRIP


def test_labels_change_the_likelihood_the_latents_and_the_decoding(model, images):
    log_p = to_numpy(model.log_prob(images, labels=LABELS))
    log_p_swapped = to_numpy(model.log_prob(images, labels=SWAPPED))
    assert np.all(np.isfinite(log_p)) and np.all(np.isfinite(log_p_swapped))
    assert np.abs(log_p - log_p_swapped).min() > 0.1, (log_p, log_p_swapped)
    latents = [to_numpy(z) for z in model.encode(images, labels=LABELS)]
    latents_swapped = [to_numpy(z) for z in model.encode(images, labels=SWAPPED)]
    assert max(np.abs(a - b).max() for a, b in zip(latents, latents_swapped, strict=True)) > 1e-2
    # x' = g(f(x; y); y'): a different image, exactly the decoding of the same latents with y'.
    swapped = experiments.swap_attributes(model, images, LABELS, SWAPPED)
    np.testing.assert_allclose(swapped, to_numpy(model.decode(latents, labels=SWAPPED)), atol=SAME, rtol=0)
    assert np.abs(swapped - images).max() > 1.0


def test_conditional_samples_depend_on_labels_and_seed(model):
    a = to_numpy(model.sample(4, temperature=0.7, seed=1, labels=LABELS))
    np.testing.assert_array_equal(a, to_numpy(model.sample(4, temperature=0.7, seed=1, labels=LABELS)))
    b = to_numpy(model.sample(4, temperature=0.7, seed=1, labels=SWAPPED))
    assert np.abs(a - b).max() > 1.0
    batched = experiments.sample_in_batches(model, 4, temperature=0.7, seed=1, labels=LABELS, batch_size=4)
    np.testing.assert_allclose(batched, a, atol=SAME, rtol=0)


def test_labels_are_required_and_checked(model, images):
    with pytest.raises(ValueError, match="conditional"):
        model.log_prob(images)
    with pytest.raises(ValueError, match="conditional"):
        experiments.sample_in_batches(model, 4)
    with pytest.raises(ValueError, match=r"new_labels must have shape \(4, 2\)"):
        experiments.swap_attributes(model, images, LABELS, SWAPPED[:3])
    with pytest.raises(ValueError, match="manifold takes an unconditional model"):
        experiments.manifold(model, images)
    unconditional = RealNVP(image_shape=(8, 8, 3), num_scales=1, filters=2, num_blocks=1)
    with pytest.raises(ValueError, match="needs a conditional model"):
        experiments.swap_attributes(unconditional, images, LABELS, SWAPPED)


def test_swap_grid_shows_each_image_then_each_class(model, images):
    candidates = experiments.one_hot([0, 1], 2)
    picture = experiments.swap_grid(model, images, LABELS, candidates)
    assert picture.shape == (4 * 9 + 1, 3 * 9 + 1, 3) and picture.dtype == np.uint8
    as_class = [experiments.swap_attributes(model, images, LABELS, np.repeat(c[None], 4, 0)) for c in candidates]
    expected = image_grid(np.stack([images, *as_class], axis=1).reshape(12, 8, 8, 3), num_columns=3)
    np.testing.assert_array_equal(picture, expected)
    # The column of an image's own class is the image itself (to the round-trip error).
    own = [as_class[int(k)][i] for i, k in enumerate(LABELS.argmax(-1))]
    assert np.abs(np.stack(own) - images).max() < ROUND_TRIP


def test_one_hot():
    np.testing.assert_array_equal(experiments.one_hot(np.array([[1], [0]]), 3), [[[0, 1, 0]], [[1, 0, 0]]])
    assert experiments.one_hot([], 2).shape == (0, 2)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 2\)"):
        experiments.one_hot([0, 2], 2)
    with pytest.raises(ValueError, match="integers"):
        experiments.one_hot([0.5], 2)
    with pytest.raises(ValueError, match="num_classes"):
        experiments.one_hot([0], 0)


def test_conditional_model_trains_with_fit_on_labelled_patches():
    # Real labelled data: 8x8 patches of the two embedded photos, labelled by photo.
    keras.utils.set_random_seed(1)
    train = load_embedded_patches("train", patch_size=8)
    train_labels = experiments.one_hot(embedded_patch_origins("train", patch_size=8)[:, 0], 2)
    chosen = np.random.default_rng(0).permutation(len(train))[:640]
    test = load_embedded_patches("test", patch_size=8)
    test_labels = experiments.one_hot(embedded_patch_origins("test", patch_size=8)[:, 0], 2)
    every = np.linspace(0, len(test) - 1, 64).astype(int)  # both photos
    held_out = dequantize_numpy(test[every], seed=0)
    held_out_labels = test_labels[every]

    # One scale (4 checkerboard couplings): the training step compiles in a third of the time.
    model = RealNVP(image_shape=(8, 8, 3), num_scales=1, filters=8, num_blocks=1, label_dim=2, seed=0)
    before = float(np.mean(to_numpy(model.bits_per_dim(held_out, labels=held_out_labels))))
    model.compile(optimizer=keras.optimizers.Adam(3e-3, global_clipnorm=100.0))
    history = model.fit(x={"images": train[chosen], "labels": train_labels[chosen]}, batch_size=64, epochs=2, verbose=0)
    after = float(np.mean(to_numpy(model.bits_per_dim(held_out, labels=held_out_labels))))
    assert np.all(np.isfinite(history.history["bits_per_dim"]))
    assert after < before - 1.0, (before, after)  # measured: about 9.2 -> 7.0 bits/dim
    # It has learnt something about the classes: held-out patches are more likely under their
    # own photo's label than under the other one (measured: about 0.05 bits/dim apart).
    other = float(np.mean(to_numpy(model.bits_per_dim(held_out, labels=1.0 - held_out_labels))))
    assert other > after, (after, other)


# ------------------------------------------- conditional training with the tools


def _class_folders(root):
    """A local image folder with two class sub-folders: 16x16 patches of each embedded photo."""
    from PIL import Image

    patches = load_embedded_patches("train", patch_size=16)
    photos = embedded_patch_origins("train", patch_size=16)[:, 0]
    for photo, name in enumerate(("a_china", "b_flower")):
        (root / name).mkdir(parents=True)
        for i, k in enumerate(np.flatnonzero(photos == photo)[:40]):
            Image.fromarray(patches[k]).save(root / name / f"{i:02d}.png")
    return root


def test_train_tool_trains_a_conditional_preset_on_class_folders_and_the_tools_read_it(tmp_path):
    from keras_realnvp.cli import evaluate as evaluate_tool
    from keras_realnvp.cli import sample as sample_tool
    from keras_realnvp.data.held_out import held_out_data
    from keras_realnvp.evaluation import held_out_bits_per_dim
    from keras_realnvp.hub import Preset
    from keras_realnvp.training import TrainingRun

    data = _class_folders(tmp_path / "data")
    tiny = {"label_dim": 2, "num_scales": 1, "filters": 4, "num_blocks": 1}
    results = TrainingRun("embedded_16", dataset=str(data), output=tmp_path / "run", epochs=1, steps_per_epoch=2,
                          batch_size=8, eval_examples=8, overrides=tiny, verbose=0, seed=2).run()
    folder = tmp_path / "run" / "preset"
    preset = Preset.open(str(folder), RealNVP)
    model, trained = preset.build(), preset.trained
    assert model.label_dim == 2 and trained["label_names"] == ["a_china", "b_flower"]
    assert (tmp_path / "run" / "samples_epoch_001.png").is_file()  # samples drawn with the held-out labels

    # The reloaded preset reproduces the recorded held-out bits/dim, with each image's own labels.
    spec = preset.dataset
    pixels, labels, names = held_out_data(str(data), spec, (16, 16, 3), label_dim=2)  # every 20th image
    assert trained["held_out_images"] == 4 and labels.sum(axis=0).tolist() == [2.0, 2.0]  # 2 of each class
    assert names == ["a_china", "b_flower"]
    mean, _ = held_out_bits_per_dim(model, pixels, seed=2, labels=labels)
    np.testing.assert_allclose(mean, results["held_out_bits_per_dim"], atol=1e-5)
    # The likelihood depends on the labels (measured: 7e-4 to 0.1 bits/dim per image, by backend).
    x = dequantize_numpy(pixels, seed=0)
    own, other = (to_numpy(model.bits_per_dim(x, labels=y)) for y in (labels, 1.0 - labels))
    assert np.abs(own - other).min() > 1e-4, (own, other)

    record = evaluate_tool.run(evaluate_tool.parse_args(["--preset", str(folder), "--dataset", str(data),
                                                         "--num-draws", "1", "--seed", "2"]))
    assert record["conditional"] and record["images"] == 4
    np.testing.assert_allclose(record["bits_per_dim"], results["held_out_bits_per_dim"], atol=1e-5)
    # sample.py: held-out images beside samples drawn with their labels; swaps as each class.
    grids = {}
    for experiment, labels_arg in (("samples", "held-out"), ("samples", "b_flower"), ("swap", "held-out")):
        args = sample_tool.parse_args(["--preset", str(folder), "--experiment", experiment, "--num", "4",
                                       "--dataset", str(data), "--labels", labels_arg])
        grids[experiment, labels_arg] = sample_tool.draw(args, model)
    assert grids["samples", "held-out"].shape == (4 + 35 + 4, 4 + 35 + 4 + 35 + 4, 3)  # two 2x2 grids of 16x16
    assert np.abs(grids["samples", "held-out"].astype(int) - grids["samples", "b_flower"]).max() > 0
    assert grids["swap", "held-out"].shape == (4 * 17 + 1, 3 * 17 + 1, 3)  # the image, then as each class
    with pytest.raises(ValueError, match="unknown label names dog"):
        sample_tool.draw(sample_tool.parse_args(["--preset", str(folder), "--labels", "dog"]), model)
