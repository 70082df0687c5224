"""Book pages of single runs: ``notebooks/experiment.ipynb`` executed with papermill for one run.

A page is rendered for a run that is finished (only its run folder is read, no torch is
imported: a couple of seconds) or, when its folder is unfinished, runs it first. The page is
titled after its configuration, which is the title the book shows.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from alvit import paths
from alvit.config import ExperimentConfig, flatten, load_config, lookup, to_dict
from alvit.notebook import KNOBS

EXPERIMENT_NOTEBOOK = "experiment.ipynb"


def notebook_parameters(cfg: ExperimentConfig, run_dir: Path) -> dict[str, Any]:
    """The experiment notebook's parameters that reproduce ``cfg`` exactly."""
    knobs = {param: lookup(cfg, key) for param, key in KNOBS.items()}
    settings = {key: value for key, value in flatten(to_dict(cfg)).items() if key not in KNOBS.values()}
    return {"CONFIG": None, **knobs, "SETTINGS": settings, "RUN_DIR": str(run_dir)}


def page_title(cfg: ExperimentConfig) -> str:
    """``model · noise kind rate · strategy · seed N (dataset)``: a run page's heading."""
    dataset = cfg.dataset.split(":")[0]
    return f"{cfg.model} · {cfg.noise.kind} {cfg.noise.rate:g} · {cfg.strategy} · seed {cfg.seed} ({dataset})"


def render_page(run_dir: Path, page: Path, cfg: ExperimentConfig | None = None, timeout_s: float | None = None) -> Path:
    """Execute the experiment notebook for the run in ``run_dir`` into ``page`` and title it.

    ``cfg`` defaults to the run folder's own ``config.yaml``. ``timeout_s`` bounds each cell
    (papermill's ``execution_timeout``). Errors propagate: the caller records them.
    """
    import nbformat
    import papermill

    cfg = cfg if cfg is not None else load_config(run_dir / "config.yaml")
    page.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(paths.notebook_template(EXPERIMENT_NOTEBOOK)), str(page), parameters=notebook_parameters(cfg, run_dir),
        progress_bar=False, log_output=False, kernel_name="python3", execution_timeout=timeout_s,
        kernel_manager_class=encrypted_kernel_manager(),
    )
    executed = nbformat.read(str(page), as_version=4)
    first = executed.cells[0]
    first.source = first.source.replace("# One experiment", f"# {page_title(cfg)}", 1)
    nbformat.write(executed, str(page))
    return page


@functools.cache
def encrypted_kernel_manager() -> type:
    """papermill's kernel manager, asking for CurveZMQ transport encryption where both sides can.

    ipykernel 7 logs "Kernel is running over TCP without encryption" to stderr at every kernel
    start: a paragraph per page, 60 in a demo sweep. The python3 kernelspec declares Curve
    support, and jupyter_client 8.8+ provisions the keys when ``transport_encryption`` is
    ``"auto"``; that removes the cause instead of hiding the message. Older versions get the
    plain manager (and their kernels do not warn).

    jupyter_client also interrupts (SIGINT) every kernel it shuts down, in case it is busy. A
    kernel that papermill shuts down has finished the notebook, but when the signal lands while
    it answers a late message it logs "KeyboardInterrupt caught in kernel" (about once in 50
    pages). The manager skips that interrupt during a shutdown; a kernel that does not stop on
    the shutdown request is still killed after ``shutdown_wait_time``.
    """
    import zmq
    from jupyter_client.manager import KernelManager

    encrypt = "transport_encryption" in KernelManager.class_trait_names() and zmq.has("curve")

    class QuietKernelManager(KernelManager):
        def __init__(self, **kwargs: Any):
            super().__init__(**kwargs)
            if encrypt:
                self.transport_encryption = "auto"

        async def _async_interrupt_kernel(self) -> None:
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

    return QuietKernelManager
