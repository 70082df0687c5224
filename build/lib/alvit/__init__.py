"""alvit: active learning with vision transformers under label noise.

A reproducible version of arXiv 2505.04375. Data flows one way: config -> data + noisy oracle ->
model -> loop (train -> evaluate -> score pool -> select -> query oracle -> record) -> run folder
-> tidy table -> plots -> book. Start with :func:`alvit.config.load_config` and
:func:`alvit.loop.run_experiment`, or the ``alvit`` command.
"""

__version__ = "0.1.0"
