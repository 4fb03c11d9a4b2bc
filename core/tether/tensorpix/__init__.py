"""TensorPix (seed 002): AI enhancement of a movie (upscale, denoise, frame interpolation).

:mod:`.models` (the wire contract), :mod:`.client` (:class:`~.client.TensorPixClient`), :mod:`.submit` (the one
headless path: check options -> upload -> wait until ready -> create the job -> record it).
"""
