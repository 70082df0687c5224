"""alvit: active learning with vision transformers under label noise.

A reproducible version of arXiv 2505.04375. Data flows one way: config -> data + noisy oracle ->
model -> loop (train -> evaluate -> score pool -> select -> query oracle -> record) -> run folder
-> tidy table -> plots -> book. Start with :func:`alvit.config.load_config` and
:func:`alvit.loop.run_experiment`, or the ``alvit`` command.
"""

__version__ = "0.1.0"

import warnings

# huggingface_hub (imported by timm) imports tqdm.auto, which in a Jupyter kernel without
# ipywidgets warns "IProgress not found" into the first output of every notebook that loads a
# model. alvit draws no notebook progress bars, so the advice does not apply; only that message
# is silenced.
warnings.filterwarnings("ignore", message="IProgress not found")
