"""The plain-PyTorch baseline's steps as the benchmark times them, and a Keras model's weights copied into it.

A benchmark baseline, not library code (see `keras_realnvp.backend.torch_baseline`): `Runner`
trains, evaluates and samples `TorchRealNVP` from NHWC NumPy batches, as
`keras_realnvp.RealNVP` is called; `load_keras_weights` makes it compute the same
log-density as a Keras model of the same architecture, which the benchmark checks at start-up.

Example:

>>> import numpy as np
>>> runner = Runner((8, 8, 3), num_scales=2, filters=4, num_blocks=1, device="cpu")
>>> isinstance(runner.train_step(np.zeros((2, 8, 8, 3), "uint8")), float)
True
"""

import math

import torch

from keras_realnvp.backend.devices import cuda_step_memory
from keras_realnvp.backend.torch_baseline import RunningBatchNorm, TorchRealNVP


class Runner:
    """Training, evaluation and sampling steps of `TorchRealNVP`, as the benchmark times them.

    Images arrive as NHWC uint8 batches (like the Keras model's input); they are moved to
    the device, dequantized and viewed as NCHW in channels_last memory (no copy).
    `amp_bfloat16` runs the model under `torch.autocast` in bfloat16 (the s/t networks'
    heads are float32, as in keras_realnvp; statistics and log-determinants are float32
    through autocast's float32 list: log, exp, sums).

    Example:

    >>> import numpy as np
    >>> runner = Runner((8, 8, 3), num_scales=2, filters=4, num_blocks=1, device="cpu")
    >>> runner.parameter_count() < runner.state_count()
    True
    >>> runner.sample(2, 8, 8).shape
    (2, 8, 8, 3)
    """

    def __init__(self, image_shape, num_scales, filters, num_blocks, device=None, channels_last=True,
                 amp_bfloat16=False, seed=0):
        torch.manual_seed(seed)
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = TorchRealNVP(image_shape, num_scales, filters, num_blocks).to(self.device)
        self.model = self.model.to(memory_format=self.memory_format)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, foreach=True)
        self.amp = amp_bfloat16
        self.generator = torch.Generator(device=self.device).manual_seed(seed + 1)

    @staticmethod
    def framework():
        """`"torch VERSION"`."""
        return f"torch {torch.__version__}"

    def memory_format_name(self):
        """`"channels_last"` or `"contiguous"`: the layout of the model's tensors."""
        return "channels_last" if self.memory_format == torch.channels_last else "contiguous"

    def parameter_count(self):
        """The trainable parameters."""
        return sum(p.numel() for p in self.model.parameters())

    def state_count(self):
        """Parameters plus batch-norm statistics, counted as Keras counts its weights."""
        buffers = sum(
            b.numel() for name, b in self.model.named_buffers() if not name.endswith("num_batches_tracked")
        )
        return self.parameter_count() + buffers

    def _images(self, pixels_nhwc):
        x = torch.as_tensor(pixels_nhwc, device=self.device).permute(0, 3, 1, 2)
        return x.contiguous(memory_format=self.memory_format)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def train_step(self, pixels_nhwc):
        """One Adam step on a uint8 NHWC batch (dequantized here); returns the loss."""
        self.model.train()
        x = self._images(pixels_nhwc).float()
        x = x + torch.rand(x.shape, device=self.device, generator=self.generator).contiguous(
            memory_format=self.memory_format
        )
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self.model.loss(x)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 100.0, foreach=True)
        self.optimizer.step()
        # Free the gradients now rather than at the next step's start: between steps only the
        # weights and Adam's moments are held, as in keras_realnvp on every backend, so that
        # the memory a step adds is measured from the same state.
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def update_step(self):
        """The optimizer part of `train_step` alone: the gradient clip and Adam's step.

        Every parameter gets a random gradient the first time (drawn once and kept).
        """
        if any(p.grad is None for p in self.model.parameters()):
            for p in self.model.parameters():
                p.grad = torch.randn(p.shape, device=p.device, generator=self.generator).to(
                    memory_format=torch.channels_last if p.dim() == 4 else torch.contiguous_format
                )
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 100.0, foreach=True)
        self.optimizer.step()

    @torch.no_grad()
    def bits_per_dim(self, images_nhwc):
        """Bits/dim of each (already dequantized) NHWC image, as a NumPy array."""
        self.model.eval()
        x = self._images(images_nhwc).float()
        with self._autocast():
            log_prob = self.model.log_prob(x)
        bits = -log_prob.float() / (x[0].numel() * math.log(2.0))
        return bits.cpu().numpy()

    @torch.no_grad()
    def sample(self, num_samples, height, width, temperature=1.0):
        """`num_samples` NHWC images (pixel values in [0, 256)) as a NumPy array."""
        self.model.eval()
        latents = [
            (temperature * torch.randn((num_samples, *s), device=self.device, generator=self.generator)).contiguous(
                memory_format=self.memory_format
            )
            for s in self.model.latent_shapes(height, width)
        ]
        with self._autocast():
            x = self.model.inverse_flow(latents)
        return x.float().permute(0, 2, 3, 1).cpu().numpy()

    def step_memory(self, pixels_nhwc):
        """CUDA memory of one training step beyond what is in use before it, `(bytes, how)`; None on a CPU."""
        if self.device.type != "cuda":
            return None
        return cuda_step_memory(lambda: self.train_step(pixels_nhwc))


def load_keras_weights(torch_model, keras_model):
    """Copy the weights of a `keras_realnvp.RealNVP` of the same architecture into `torch_model`.

    Layer by layer in flow order; the benchmark uses it to check that the baseline computes
    the same log-density as the Keras model (so it is the same architecture, not just one of
    the same size).

    Example:

    >>> import keras, numpy as np
    >>> from keras_realnvp import RealNVP
    >>> keras_model = RealNVP(image_shape=(8, 8, 3), num_scales=2, filters=4, num_blocks=1)
    >>> runner = Runner((8, 8, 3), num_scales=2, filters=4, num_blocks=1, device="cpu")
    >>> load_keras_weights(runner.model, keras_model)
    >>> x = np.random.default_rng(0).uniform(0, 256, (2, 8, 8, 3)).astype("float32")
    >>> expected = keras.ops.convert_to_numpy(keras_model.bits_per_dim(x))
    >>> bool(np.abs(runner.bits_per_dim(x) - expected).max() < 1e-3)
    True
    """
    import numpy as np

    def numpy(variable):
        return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable)

    def put(target, value, transpose=None):
        value = numpy(value)
        if transpose is not None:
            value = value.transpose(transpose)
        assert tuple(target.shape) == value.shape, (tuple(target.shape), value.shape)
        with torch.no_grad():
            target.copy_(torch.as_tensor(value, dtype=target.dtype))

    def conv(t, k):
        put(t.direction, k.direction, (3, 2, 0, 1))  # HWIO -> OIHW
        put(t.scale, k.scale)
        put(t.bias, k.bias)

    def batch_norm(t, k):
        put(t.weight, k.gamma)
        put(t.bias, k.beta)
        put(t.running_mean, k.moving_mean)
        put(t.running_var, k.moving_variance)

    keras_chains = [*[c for pair in zip(keras_model.checkerboard_flows, keras_model.channel_flows) for c in pair],
                    keras_model.final_flow]
    torch_chains = [*[c for pair in zip(torch_model.checkerboard_flows, torch_model.channel_flows) for c in pair],
                    torch_model.final_flow]
    assert len(keras_chains) == len(torch_chains)
    for keras_chain, torch_chain in zip(keras_chains, torch_chains):
        assert len(keras_chain.bijectors) == len(torch_chain.layers)
        for k, t in zip(keras_chain.bijectors, torch_chain.layers):
            if isinstance(t, RunningBatchNorm):
                put(t.moving_mean, k.moving_mean)
                put(t.moving_variance, k.moving_variance)
                put(t.num_updates, k.num_updates)
                continue
            assert (t.mask_type, t.reverse) == (k.mask_type, k.reverse)
            put(t.scale, k.scale)
            net = k.net
            conv(t.net.stem, net.stem)
            for ts, ks in zip(t.net.skips, net.skips, strict=True):
                conv(ts, ks)
            for i, (bn_a, conv_a, bn_b, conv_b) in enumerate(t.net.blocks):
                kbn_a, kconv_a, kbn_b, kconv_b = net.block_layers[4 * i : 4 * i + 4]
                batch_norm(bn_a, kbn_a)
                conv(conv_a, kconv_a)
                batch_norm(bn_b, kbn_b)
                conv(conv_b, kconv_b)
            batch_norm(t.net.head_norm, net.head_norm)
            conv(t.net.head, net.head)
