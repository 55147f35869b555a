"""Type aliases shared by the public signatures."""

import mlx.core as mx

StreamOrDevice = mx.Stream | mx.Device | mx.DeviceType | None
"""What ``stream=`` accepts, as in MLX's own functions (None: the default device)."""

Tolerance = float | mx.array | None
"""A relative tolerance: a float, an array broadcasting against the batch shape, or None."""
