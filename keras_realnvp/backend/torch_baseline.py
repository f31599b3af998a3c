"""A plain-PyTorch Real NVP with exactly keras_realnvp's architecture: the benchmark's baseline.

A benchmark baseline, not library code: `keras-realnvp benchmark --implementation
torch-baseline` (and `--compare`) measure what hand-written PyTorch reaches on the same
machine, the reference the package's performance targets are stated against. Nothing of
the library imports it; it lives in `keras_realnvp.backend` because it is PyTorch by
nature. It mirrors `keras_realnvp.RealNVP` layer for layer, so that both have the same
parameter count and the same log-density (`load_keras_weights`; the benchmark checks both
at start-up) and the same FLOP count:

- the logit preprocessing of §4.1 with its log-determinant, uniform dequantization;
- per scale 3 checkerboard couplings, a squeeze (same channel order as
  `keras_realnvp.bijectors.Squeeze`), 3 channel couplings and factoring out half of the
  channels; 4 checkerboard couplings at the last scale;
- every coupling followed by the appendix-E batch norm (running averages, gradients through
  the batch statistics only) with its log-determinant;
- s/t networks: weight-normalized 3x3 stem, residual blocks of [BN, ReLU, 3x3 conv, BN,
  ReLU, 3x3 conv], 1x1 skip convolutions summed, BN, ReLU, 1x1 head; `s = scale * tanh(.)`;
  checkerboard couplings see `b * x` and the mask as an extra channel;
- the loss: the mean negative log-likelihood in nats per image plus `l2_scale` times the
  squared weight-scale parameters (skip, second-block and head magnitudes, coupling scales);
  Adam with the global gradient norm of that loss clipped at 100.

What makes it "the best hand-written PyTorch" on a CPU: tensors and weights in
`torch.channels_last` memory format (oneDNN's fast convolution layout on x86), in-place
ReLU where autograd allows, `torch.no_grad` for evaluation and sampling, and the fused
(`foreach`) Adam. Runs on whatever `device` it is given (CPU or CUDA).

The training, evaluation and sampling steps the benchmark times, and the copy of a Keras
model's weights, are in `keras_realnvp.backend.torch_baseline_runner`.

Example:

>>> model = TorchRealNVP((8, 8, 3), num_scales=2, filters=4, num_blocks=1)
>>> loss = model.loss(torch.full((2, 3, 8, 8), 128.5))
>>> loss.shape, loss.requires_grad
(torch.Size([]), True)
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class WeightNormConv2d(nn.Module):
    """`conv(x, g * v / ||v||) + b`, the norm per output filter (as `WeightNormConv2D`).

    Example:

    >>> tuple(WeightNormConv2d(3, 4, 3)(torch.zeros(1, 3, 8, 8)).shape)
    (1, 4, 8, 8)
    """

    def __init__(self, in_channels, out_channels, kernel_size, scale_init=1.0):
        super().__init__()
        self.direction = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) * 0.05)
        self.scale = nn.Parameter(torch.full((out_channels,), float(scale_init)))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.padding = kernel_size // 2

    def forward(self, x):
        v = self.direction
        norm = torch.sqrt(v.square().sum(dim=(1, 2, 3)) + 1e-12)
        kernel = v * (self.scale / norm)[:, None, None, None]
        return F.conv2d(x, kernel, self.bias, padding=self.padding)


class CouplingResNet(nn.Module):
    """The s/t network: weight-normalized stem, residual blocks, summed 1x1 skips, BN, ReLU, 1x1 head.

    Example:

    >>> tuple(CouplingResNet(2, 4, 1, 6)(torch.zeros(2, 2, 4, 4)).shape)
    (2, 6, 4, 4)
    """

    def __init__(self, in_channels, filters, num_blocks, out_channels, bn_momentum=0.95):
        super().__init__()

        def bn():
            return nn.BatchNorm2d(filters, eps=1e-4, momentum=1.0 - bn_momentum)

        self.stem = WeightNormConv2d(in_channels, filters, 3)
        self.skips = nn.ModuleList(WeightNormConv2d(filters, filters, 1) for _ in range(num_blocks + 1))
        self.blocks = nn.ModuleList(
            nn.ModuleList([bn(), WeightNormConv2d(filters, filters, 3), bn(), WeightNormConv2d(filters, filters, 3)])
            for _ in range(num_blocks)
        )
        self.head_norm = bn()
        self.head = WeightNormConv2d(filters, out_channels, 1, scale_init=0.1)

    def forward(self, x):
        """The network's `(N, out_channels, H, W)` output."""
        h = self.stem(x)
        skip = self.skips[0](h)
        for (bn_a, conv_a, bn_b, conv_b), skip_conv in zip(self.blocks, self.skips[1:]):
            r = conv_a(F.relu(bn_a(h)))
            r = conv_b(F.relu(bn_b(r)))
            h = h + r
            skip = skip + skip_conv(h)
        # Under autocast the head computes in float32, as keras_realnvp's does under a mixed policy.
        with torch.autocast(skip.device.type, enabled=False):
            return self.head(F.relu(self.head_norm(skip.float())))

    def weight_scales(self):
        """The weight-norm magnitudes the L2 penalty covers."""
        # As keras_realnvp's CouplingResNet.weight_scale_variables: not the stem's, not conv_a's.
        return [m.scale for m in (*self.skips, *(block[3] for block in self.blocks), self.head)]


def checkerboard_mask(height, width, reverse, device, dtype):
    """`(1, 1, H, W)`: 1 where row + col is odd (even if `reverse`), as `masks.checkerboard_mask`.

    Example:

    >>> checkerboard_mask(2, 2, False, "cpu", torch.float32)[0, 0].tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    rows = torch.arange(height, device=device)[:, None]
    cols = torch.arange(width, device=device)[None, :]
    return ((rows + cols) % 2 == (0 if reverse else 1)).to(dtype)[None, None]


class AffineCoupling(nn.Module):
    """An affine coupling (checkerboard or channel mask): `forward` returns `(y, log_det)`, `inverse(y)` is `x`.

    Example:

    >>> coupling = AffineCoupling("checkerboard", False, 3, 4, 1, 0.95).eval()
    >>> x = torch.randn(2, 3, 4, 4)
    >>> y, log_det = coupling(x)
    >>> bool(torch.allclose(coupling.inverse(y), x, atol=1e-5)), tuple(log_det.shape)
    (True, (2,))
    """

    def __init__(self, mask_type, reverse, channels, filters, num_blocks, bn_momentum):
        super().__init__()
        self.mask_type = mask_type
        self.reverse = reverse
        if mask_type == "channel":
            net_in, transformed = channels // 2, channels // 2
        else:
            net_in, transformed = channels + 1, channels
        self.net = CouplingResNet(net_in, filters, num_blocks, 2 * transformed, bn_momentum)
        self.scale = nn.Parameter(torch.zeros(transformed))
        self._masks = {}

    def _mask(self, x):
        key = (x.shape[2], x.shape[3], x.device, x.dtype)
        if key not in self._masks:  # a constant per shape, built once
            self._masks[key] = checkerboard_mask(x.shape[2], x.shape[3], self.reverse, x.device, x.dtype)
        return self._masks[key]

    def _shift_log_scale(self, net_input):
        out = self.net(net_input)
        c = out.shape[1] // 2
        return out[:, c:], self.scale[None, :, None, None] * torch.tanh(out[:, :c])

    def _halves(self, x):
        c = x.shape[1] // 2
        first, second = x[:, :c], x[:, c:]
        return (second, first) if self.reverse else (first, second)

    def _merge(self, kept, moved):
        return torch.cat([moved, kept] if self.reverse else [kept, moved], dim=1)

    def _checkerboard_input(self, x, mask):
        return torch.cat([x * mask, mask.expand(x.shape[0], 1, -1, -1)], dim=1)

    def forward(self, x):
        """`(y, log_det)` with one log-determinant per image."""
        if self.mask_type == "channel":
            kept, moving = self._halves(x)
            shift, log_scale = self._shift_log_scale(kept)
            return self._merge(kept, moving * torch.exp(log_scale) + shift), log_scale.flatten(1).sum(1)
        mask = self._mask(x)
        shift, log_scale = self._shift_log_scale(self._checkerboard_input(x, mask))
        log_scale = log_scale * (1.0 - mask)
        return x * torch.exp(log_scale) + shift * (1.0 - mask), log_scale.flatten(1).sum(1)

    def inverse(self, y):
        """The `x` that `forward` maps to `y`."""
        if self.mask_type == "channel":
            kept, moving = self._halves(y)
            shift, log_scale = self._shift_log_scale(kept)
            return self._merge(kept, (moving - shift) * torch.exp(-log_scale))
        mask = self._mask(y)
        shift, log_scale = self._shift_log_scale(self._checkerboard_input(y, mask))
        log_scale = log_scale * (1.0 - mask)
        return (y - shift * (1.0 - mask)) * torch.exp(-log_scale)


class RunningBatchNorm(nn.Module):
    """Appendix E: normalize with running averages that include the current batch statistics.

    Example:

    >>> y, log_det = RunningBatchNorm(3)(torch.randn(2, 3, 4, 4))
    >>> tuple(y.shape), tuple(log_det.shape)
    ((2, 3, 4, 4), (2,))
    """

    def __init__(self, channels, momentum=0.95, epsilon=1e-4):
        super().__init__()
        self.momentum = momentum
        self.epsilon = epsilon
        self.register_buffer("moving_mean", torch.zeros(channels))
        self.register_buffer("moving_variance", torch.ones(channels))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.int32))

    def _statistics(self, x):
        if not self.training:
            return self.moving_mean, self.moving_variance
        batch_mean = x.mean(dim=(0, 2, 3))
        batch_variance = (x - batch_mean[None, :, None, None]).square().mean(dim=(0, 2, 3))
        rho, first = self.momentum, self.num_updates == 0  # a tensor: no host sync on a GPU
        mean = torch.where(first, batch_mean, rho * self.moving_mean + (1.0 - rho) * batch_mean)
        variance = torch.where(first, batch_variance, rho * self.moving_variance + (1.0 - rho) * batch_variance)
        with torch.no_grad():
            self.moving_mean.copy_(mean)
            self.moving_variance.copy_(variance)
            self.num_updates += 1
        return mean, variance

    def forward(self, x):
        """`(y, log_det)`; in training mode the running averages take in this batch."""
        mean, variance = self._statistics(x)
        log_scale = -0.5 * torch.log(variance + self.epsilon)
        y = (x - mean[None, :, None, None]) * torch.exp(log_scale)[None, :, None, None]
        log_det = log_scale.sum() * (x.shape[2] * x.shape[3])
        return y, log_det.expand(x.shape[0])

    def inverse(self, y):
        """Undo the normalization with the running averages."""
        log_scale = -0.5 * torch.log(self.moving_variance + self.epsilon)
        return y * torch.exp(-log_scale)[None, :, None, None] + self.moving_mean[None, :, None, None]


class CouplingChain(nn.Module):
    """`count` couplings of one mask type, alternating which half is kept, each followed by a batch norm.

    Example:

    >>> chain = CouplingChain("channel", 3, 4, 4, 1, 0.95, 1e-4)
    >>> y, log_det = chain(torch.randn(2, 4, 4, 4))
    >>> tuple(y.shape), tuple(log_det.shape)
    ((2, 4, 4, 4), (2,))
    """

    def __init__(self, mask_type, count, channels, filters, num_blocks, bn_momentum, bn_epsilon):
        super().__init__()
        self.layers = nn.ModuleList()
        for j in range(count):
            self.layers.append(AffineCoupling(mask_type, bool(j % 2), channels, filters, num_blocks, bn_momentum))
            self.layers.append(RunningBatchNorm(channels, bn_momentum, bn_epsilon))

    def forward(self, x):
        """`(y, log_det)` through every layer."""
        total = 0.0
        for layer in self.layers:
            x, log_det = layer(x)
            total = total + log_det
        return x, total

    def inverse(self, y):
        """Every layer's inverse, last first."""
        for layer in reversed(self.layers):
            y = layer.inverse(y)
        return y


def squeeze(x):
    """`(N, C, H, W) -> (N, 4C, H/2, W/2)`; output channel `(2 di + dj) C + c` (as `Squeeze`).

    Example:

    >>> tuple(squeeze(torch.zeros(1, 3, 4, 4)).shape)
    (1, 12, 2, 2)
    """
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 3, 5, 1, 2, 4)
    return y.reshape(n, 4 * c, h // 2, w // 2)


def unsqueeze(y):
    """The inverse of `squeeze`.

    Example:

    >>> x = torch.randn(1, 3, 4, 4)
    >>> bool(torch.equal(unsqueeze(squeeze(x)), x))
    True
    """
    n, c4, h, w = y.shape
    c = c4 // 4
    x = y.reshape(n, 2, 2, c, h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(n, c, 2 * h, 2 * w)


class TorchRealNVP(nn.Module):
    """The multi-scale Real NVP of `keras_realnvp.RealNVP` in plain PyTorch (NCHW tensors).

    Example:

    >>> model = TorchRealNVP((8, 8, 3), num_scales=2, filters=4, num_blocks=1).eval()
    >>> tuple(model.log_prob(torch.full((2, 3, 8, 8), 128.5)).shape)
    (2,)
    """

    def __init__(self, image_shape, num_scales=2, filters=64, num_blocks=8, alpha=0.05, bn_momentum=0.95,
                 bn_epsilon=1e-4, l2_scale=5e-5):
        super().__init__()
        height, width, channels = image_shape
        self.image_shape = tuple(image_shape)
        self.num_scales = num_scales
        self.alpha = alpha
        self.l2_scale = l2_scale
        self.checkerboard_flows = nn.ModuleList()
        self.channel_flows = nn.ModuleList()
        c = channels
        for i in range(num_scales - 1):
            width_i = filters * 2**i
            self.checkerboard_flows.append(
                CouplingChain("checkerboard", 3, c, width_i, num_blocks, bn_momentum, bn_epsilon)
            )
            c = 4 * c
            self.channel_flows.append(CouplingChain("channel", 3, c, 2 * width_i, num_blocks, bn_momentum, bn_epsilon))
            c = c // 2
        self.final_flow = CouplingChain(
            "checkerboard", 4, c, filters * 2 ** (num_scales - 1), num_blocks, bn_momentum, bn_epsilon
        )

    # The flow, on NCHW tensors.

    def logit(self, x):
        """The logit preprocessing of pixel values in [0, 256), and its log-determinant per image."""
        p = self.alpha + (1.0 - 2.0 * self.alpha) * x / 256.0
        log_p, log_one_minus_p = torch.log(p), torch.log1p(-p)
        scale = math.log((1.0 - 2.0 * self.alpha) / 256.0)
        return log_p - log_one_minus_p, (scale - log_p - log_one_minus_p).flatten(1).sum(1)

    def forward_flow(self, x):
        """`(latents, log_det)`: one latent per scale, the last one the final scale's."""
        h, log_det = self.logit(x)
        latents = []
        for checkerboard, channel in zip(self.checkerboard_flows, self.channel_flows):
            h, ld = checkerboard(h)
            log_det = log_det + ld
            h, ld = channel(squeeze(h))
            log_det = log_det + ld
            c = h.shape[1] // 2
            latents.append(h[:, :c])
            h = h[:, c:]
        h, ld = self.final_flow(h)
        latents.append(h)
        return latents, log_det + ld

    def inverse_flow(self, latents):
        """Pixel values from the latents of `forward_flow`."""
        h = self.final_flow.inverse(latents[-1])
        for (checkerboard, channel), z in zip(
            reversed(list(zip(self.checkerboard_flows, self.channel_flows))), reversed(latents[:-1])
        ):
            h = unsqueeze(channel.inverse(torch.cat([z, h], dim=1)))
            h = checkerboard.inverse(h)
        return (torch.sigmoid(h) - self.alpha) * (256.0 / (1.0 - 2.0 * self.alpha))

    @staticmethod
    def prior_log_prob(latents):
        """The standard normal log-density of the latents, per image."""
        return sum((-0.5 * z.square() - _HALF_LOG_2PI).flatten(1).sum(1) for z in latents)

    def log_prob(self, x):
        """Log-density of pixel values in nats per image."""
        latents, log_det = self.forward_flow(x)
        return self.prior_log_prob(latents) + log_det

    def weight_scales(self):
        """Every parameter the L2 penalty covers."""
        scales = []
        for module in self.modules():
            if isinstance(module, AffineCoupling):
                scales += [*module.net.weight_scales(), module.scale]
        return scales

    def loss(self, x):
        """The training loss: mean negative log-likelihood (nats per image) plus the L2 penalty."""
        nll = -self.log_prob(x).mean()  # nats per image, as keras_realnvp's RealNVP.compute_loss
        penalty = torch.stack([s.square().sum() for s in self.weight_scales()]).sum()
        return nll + self.l2_scale * penalty

    def latent_shapes(self, height, width):
        """The `(C, H, W)` of each latent for images of `height` x `width`."""
        c = self.image_shape[-1]
        shapes = []
        for _ in range(self.num_scales - 1):
            height, width, c = height // 2, width // 2, 2 * c
            shapes.append((c, height, width))
        shapes.append((c, height, width))
        return shapes
