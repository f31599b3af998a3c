"""Figure 1: a Real NVP on 2-D toy data, drawn both ways with the grid lines of X and Z."""

import numpy as np

from keras_realnvp.experiments._common import check_positive_int, to_numpy
from keras_realnvp.models.toy2d import RealNVP2D

_BACKGROUND = (255, 255, 255)
_GRID = (170, 170, 170)
_FRAME = (90, 90, 90)
_TEXT = (0, 0, 0)
_TITLE_HEIGHT = 14


def _colours(values):
    """Blue (low) to red (high) by rank: follows each point from one space to the other."""
    ranks = np.argsort(np.argsort(values)) / max(len(values) - 1, 1)
    return [(int(255 * r), int(60 + 80 * (1 - abs(2 * r - 1))), int(255 * (1 - r))) for r in ranks]


def _grid_lines(low, high, num_lines, points_per_line=200):
    """Horizontal and vertical lines over the box `[low, high]`, each as a `(points, 2)` array."""
    lines = []
    t = np.linspace(0.0, 1.0, points_per_line)
    for fraction in np.linspace(0.0, 1.0, num_lines):
        for axis in (0, 1):
            line = np.empty((points_per_line, 2))
            line[:, axis] = low[axis] + fraction * (high[axis] - low[axis])
            line[:, 1 - axis] = low[1 - axis] + t * (high[1 - axis] - low[1 - axis])
            lines.append(line)
    return lines


def _panel(title, points, colours, lines, low, high, size):
    from PIL import Image, ImageDraw

    # The plot is drawn on its own square and pasted below the title strip: mapped grid lines
    # and far-out points then end at the plot's edge instead of running over the title.
    plot = Image.new("RGB", (size, size), _BACKGROUND)
    draw = ImageDraw.Draw(plot)

    def to_pixels(xy):
        u = (xy[:, 0] - low[0]) / (high[0] - low[0]) * (size - 1)
        v = (1.0 - (xy[:, 1] - low[1]) / (high[1] - low[1])) * (size - 1)
        # Far-away points of a mapped line only need to leave the panel, not to be exact.
        return np.clip(np.stack([u, v], axis=-1), -4 * size, 5 * size)

    for line in lines:
        finite = line[np.all(np.isfinite(line), axis=-1)]
        if len(finite) > 1:
            draw.line([tuple(p) for p in to_pixels(finite)], fill=_GRID, width=1)
    for (u, v), colour in zip(to_pixels(points), colours, strict=True):
        draw.ellipse((u - 1.5, v - 1.5, u + 1.5, v + 1.5), fill=colour)
    draw.rectangle((0, 0, size - 1, size - 1), outline=_FRAME)
    picture = Image.new("RGB", (size, size + _TITLE_HEIGHT), _BACKGROUND)
    ImageDraw.Draw(picture).text((4, 1), title, fill=_TEXT)
    picture.paste(plot, (0, _TITLE_HEIGHT))
    return np.asarray(picture)


def toy_figure(
    model, data, num_samples=None, seed=0, panel_size: int = 256, num_grid_lines: int = 11, latent_range=4.0
) -> np.ndarray:
    """Figure 1's four panels from a trained `RealNVP2D`, as one RGB picture.

    Top left, inference: the data `x ~ p_X` with the grid lines of X. Top right: their
    image `z = f(x)` in Z, with the images of those grid lines. Bottom right, generation:
    samples `z ~ N(0, I)` with the grid lines of Z. Bottom left: `x = f^-1(z)` in X,
    with the images of Z's grid lines. Points are coloured by the rank of their first
    coordinate in the panel they start from (X on top, Z below), so each point can be
    followed across. X is drawn on the data's bounding box (plus 15% on each side), Z
    on `[-latent_range, latent_range]^2`.

    Args:
        model: a `RealNVP2D` with `dim=2`.
        data: `(N, 2)` points (e.g. `models.toy2d.two_moons`).
        num_samples: points drawn from the prior; default `N`.
        seed: seed of the prior draw.
        panel_size: side of each panel in pixels.
        num_grid_lines: grid lines per direction.
        latent_range: half-width of the box drawn for Z.

    Returns:
        A uint8 array `(2 * (panel_size + 14) + 12, 2 * panel_size + 12, 3)`. Needs Pillow.

    Example:

    >>> from keras_realnvp.models.toy2d import RealNVP2D, two_moons
    >>> model = RealNVP2D(num_couplings=2, filters=8)
    >>> toy_figure(model, two_moons(50, seed=0), panel_size=64).shape
    (168, 140, 3)
    """
    if not isinstance(model, RealNVP2D) or model.dim != 2:
        raise ValueError(f"toy_figure draws a RealNVP2D with dim=2, got {type(model).__name__}.")
    panel_size = check_positive_int(panel_size, "panel_size", minimum=16)
    num_grid_lines = check_positive_int(num_grid_lines, "num_grid_lines", minimum=2)
    if not latent_range > 0:
        raise ValueError(f"latent_range must be > 0, got {latent_range}.")
    data = np.asarray(to_numpy(data) if hasattr(data, "shape") else data, dtype=np.float32)
    if data.ndim != 2 or data.shape[1] != 2 or len(data) == 0 or not np.all(np.isfinite(data)):
        raise ValueError(f"data must be finite points of shape (N, 2) with N >= 1, got shape {data.shape}.")
    num_samples = len(data) if num_samples is None else check_positive_int(num_samples, "num_samples")

    low, high = data.min(axis=0), data.max(axis=0)
    margin = 0.15 * np.maximum(high - low, 1e-3)
    x_low, x_high = low - margin, high + margin
    z_low, z_high = np.full(2, -float(latent_range)), np.full(2, float(latent_range))
    x_lines = _grid_lines(x_low, x_high, num_grid_lines)
    z_lines = _grid_lines(z_low, z_high, num_grid_lines)

    encoded = to_numpy(model.encode(data))
    samples_z = to_numpy(model.sample_latents(num_samples, seed=seed))
    decoded = to_numpy(model.decode(samples_z))
    mapped_x_lines = np.split(to_numpy(model.encode(np.concatenate(x_lines))), len(x_lines))
    mapped_z_lines = np.split(to_numpy(model.decode(np.concatenate(z_lines))), len(z_lines))

    data_colours, sample_colours = _colours(data[:, 0]), _colours(samples_z[:, 0])
    size = panel_size
    panels = [
        [
            _panel("Inference: x ~ p(X)", data, data_colours, x_lines, x_low, x_high, size),
            _panel("z = f(x)", encoded, data_colours, mapped_x_lines, z_low, z_high, size),
        ],
        [
            _panel("Generation: x = f^-1(z)", decoded, sample_colours, mapped_z_lines, x_low, x_high, size),
            _panel("z ~ p(Z)", samples_z, sample_colours, z_lines, z_low, z_high, size),
        ],
    ]
    gap = 4
    height, width = size + _TITLE_HEIGHT, size
    figure = np.full((2 * height + 3 * gap, 2 * width + 3 * gap, 3), 255, np.uint8)
    for row in range(2):
        for column in range(2):
            top, left = gap + row * (height + gap), gap + column * (width + gap)
            figure[top : top + height, left : left + width] = panels[row][column]
    return figure


def train_toy(steps: int = 600, seed: int = 0, num_points: int = 4096, batch_size: int = 256,
              learning_rate: float = 3e-3):
    """Figure 1's model: a `RealNVP2D` (`TOY_2D_CONFIG`) trained on `two_moons` for about `steps` Adam steps.

    Trains whole epochs over `num_points` two-moons points (`seed`), as many as `steps`
    batches of `batch_size` need (rounded up); `model.optimizer.iterations` holds the
    steps taken. Seeds Keras (`keras.utils.set_random_seed(seed)`), so a run repeats.

    Example:

    >>> from keras_realnvp.models.toy2d import two_moons
    >>> model = train_toy(steps=1, num_points=512)
    >>> int(model.optimizer.iterations), toy_figure(model, two_moons(20, seed=1), panel_size=64).shape
    (2, (168, 140, 3))
    """
    import keras

    from keras_realnvp.models.toy2d import TOY_2D_CONFIG, two_moons

    steps, batch_size = check_positive_int(steps, "steps"), check_positive_int(batch_size, "batch_size")
    keras.utils.set_random_seed(seed)
    data = two_moons(num_points, seed=seed)
    model = RealNVP2D(**TOY_2D_CONFIG, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    epochs = -(-steps * batch_size // len(data))
    model.fit(data, batch_size=batch_size, epochs=epochs, verbose=0)
    return model
