"""Models assembled from the bijective layers: `RealNVP` (images) and `RealNVP2D` (vectors).

`flow.Flow` is their shared base class (log-density, bits/dim, encoding, decoding, sampling),
`scales` the multi-scale structure of `RealNVP`, `input_checks` and `size_limits` the checks
of what users pass.
"""

from keras_realnvp.models.flow import Flow, bits_per_dim_from_log_prob
from keras_realnvp.models.realnvp import RealNVP
from keras_realnvp.models.scales import Scale, spatial_rule

__all__ = ["Flow", "RealNVP", "Scale", "bits_per_dim_from_log_prob", "spatial_rule"]
