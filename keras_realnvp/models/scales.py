"""The multi-scale structure of section 3.6, written once: shapes, widths and the walk over the scales.

A `RealNVP` of `num_scales` scales runs, on `(height, width, channels)` images:

    scale i < num_scales - 1: 3 checkerboard couplings at (h, w, c), squeeze to (h/2, w/2, 4c),
        3 channel couplings there, factor out half: a latent (h/2, w/2, 2c) leaves and
        (h/2, w/2, 2c) goes on to scale i + 1;
    the last scale: 4 checkerboard couplings at (h, w, c); their output is the last latent.

The s/t networks of scale i have `filters * 2^i` hidden maps (checkerboard couplings) and
twice that (channel couplings). Everything that needs one of these facts asks here:
`spatial_rule` (which heights and widths a model accepts), `coupling_widths`,
`scale_shapes` (pure arithmetic, used by the size limits and `RealNVP.latent_shapes`) and
`Scale`, one scale's layers with its shapes, as `RealNVP.scales()` yields them (used by the
model's build, forward and inverse passes, its L2 penalty, `diagnostics` and `flops`).
"""

from typing import Any, NamedTuple


def spatial_rule(num_scales):
    """`(multiple, minimum)`: heights and widths must be multiples of the first and at least the second.

    `num_scales - 1` squeezes each halve the height and width (`multiple = 2^(num_scales - 1)`),
    and the last scale's checkerboard couplings need at least 2x2 positions
    (`minimum = 2^num_scales`).

    Example:

    >>> [spatial_rule(n) for n in (1, 2, 3)]
    [(1, 2), (2, 4), (4, 8)]
    """
    return 2 ** (num_scales - 1), 2**num_scales


def coupling_widths(filters, index):
    """`(checkerboard, channel)`: hidden maps of the s/t networks of scale `index` (from 0).

    Example:

    >>> [coupling_widths(64, i) for i in range(3)]
    [(64, 128), (128, 256), (256, 512)]
    """
    width = filters * 2**index
    return width, 2 * width


class ScaleShapes(NamedTuple):
    """The per-example shapes `(h, w, c)` at one scale; see `scale_shapes`.

    `squeezed_shape` (where the channel couplings run) and `output_shape` (what goes on to the
    next scale) are `None` for the last scale, whose output is its latent.
    """

    index: int
    is_last: bool
    input_shape: tuple
    squeezed_shape: tuple | None
    latent_shape: tuple
    output_shape: tuple | None


def scale_shapes(image_shape, num_scales):
    """The shapes at every scale for images of `image_shape`, finest scale first.

    Pure arithmetic, no checks: heights and widths that the rule (`spatial_rule`) refuses
    give floored sizes; an unknown size (`None`) stays unknown.

    Example:

    >>> for s in scale_shapes((32, 32, 3), num_scales=2):
    ...     print(s.index, s.input_shape, s.squeezed_shape, s.latent_shape)
    0 (32, 32, 3) (16, 16, 12) (16, 16, 6)
    1 (16, 16, 6) None (16, 16, 6)
    """
    h, w, c = image_shape

    def half(size):
        return None if size is None else size // 2

    shapes = []
    for index in range(num_scales - 1):
        squeezed = (half(h), half(w), 4 * c)
        latent = (half(h), half(w), 2 * c)
        shapes.append(ScaleShapes(index, False, (h, w, c), squeezed, latent, latent))
        h, w, c = latent
    shapes.append(ScaleShapes(num_scales - 1, True, (h, w, c), None, (h, w, c), None))
    return shapes


class Scale(NamedTuple):
    """One scale of a `RealNVP`: its layers and its per-example shapes.

    `checkerboard` and `channel` are `BijectorChain`s of couplings (each followed by its
    batch normalization), `squeeze` a `Squeeze`, `factor_out` a `FactorOut`; the last scale
    has only `checkerboard` (the others are `None`). `shapes` is its `ScaleShapes`.
    `forward` and `inverse` are the scale's part of the flow and its inverse.

    Example:

    >>> from keras_realnvp import RealNVP
    >>> model = RealNVP(image_shape=(8, 8, 1), num_scales=2, filters=4, num_blocks=1)
    >>> [(s.shapes.input_shape, s.checkerboard.name, s.is_last) for s in model.scales()]
    [((8, 8, 1), 'scale_0_checkerboard', False), ((4, 4, 2), 'scale_1_checkerboard', True)]
    """

    checkerboard: Any
    squeeze: Any
    channel: Any
    factor_out: Any
    shapes: ScaleShapes

    @property
    def is_last(self):
        """Whether this is the last scale (no squeeze, no channel couplings, no factoring out)."""
        return self.shapes.is_last

    @property
    def chains(self):
        """The scale's coupling chains in forward order: checkerboard, then channel (if any)."""
        return [self.checkerboard] if self.is_last else [self.checkerboard, self.channel]

    def forward(self, h, labels=None, training=False):
        """`(latent, h_next, log_det)`: the scale's part of `f`; `h_next` is `None` for the last scale."""
        h, log_det = self.checkerboard(h, labels=labels, training=training)
        if self.is_last:
            return h, None, log_det
        h, _ = self.squeeze(h)
        h, channel_log_det = self.channel(h, labels=labels, training=training)
        z, h = self.factor_out(h)
        return z, h, log_det + channel_log_det

    def inverse(self, z, h_next=None, labels=None):
        """The scale's input from its latent `z` and what went on to the next scale (`h_next`)."""
        h = z
        if not self.is_last:
            h = self.factor_out.merge(z, h_next)
            h = self.channel.inverse(h, labels=labels)
            h = self.squeeze.inverse(h)
        return self.checkerboard.inverse(h, labels=labels)
