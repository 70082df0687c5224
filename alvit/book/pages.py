"""Book pages of single runs: ``notebooks/experiment.ipynb`` executed with papermill for one run.

A page is rendered for a run that is finished (only its run folder is read, no torch is
imported: a couple of seconds) or, when its folder is unfinished, runs it first. The page is
titled after its configuration, which is the title the book shows, and opens with the exact
``alvit run`` and ``papermill`` commands that rerun it. An executed notebook is published with
none of the builder's paths (:func:`without_builder_paths`): a reader downloads it and reruns it.
"""

from __future__ import annotations

import functools
import logging
import shlex
from pathlib import Path
from typing import Any

import yaml

from alvit import paths
from alvit.book.notebook import KNOBS
from alvit.config import ExperimentConfig, flatten, load_config, lookup, to_dict
from alvit.results import RunFolder

log = logging.getLogger(__name__)

EXPERIMENT_NOTEBOOK = "experiment.ipynb"


def notebook_parameters(cfg: ExperimentConfig, run_dir: Path) -> dict[str, Any]:
    """The experiment notebook's parameters that reproduce ``cfg`` exactly."""
    knobs = {param: lookup(cfg, key) for param, key in KNOBS.items()}
    settings = {key: value for key, value in flatten(to_dict(cfg)).items() if key not in KNOBS.values()}
    return {"CONFIG": None, **knobs, "SETTINGS": settings, "RUN_DIR": str(run_dir)}


def _yaml_value(value: Any) -> str:
    """A value as one YAML scalar or flow collection (what ``--set`` and papermill's ``-p`` read)."""
    return yaml.safe_dump(value, default_flow_style=True, width=float("inf")).strip().removesuffix("\n...").strip()


def _papermill_value(value: Any) -> str:
    """A value as papermill's ``-p`` reads it back (``True``, ``None``, numbers, else the string)."""
    return repr(value) if isinstance(value, bool) or value is None else str(value)


def _changed_from_defaults(cfg: ExperimentConfig) -> dict[str, Any]:
    """The dotted keys of ``cfg`` that differ from alvit's defaults, in field order."""
    defaults = flatten(to_dict(load_config(None)))
    return {key: value for key, value in flatten(to_dict(cfg)).items() if defaults.get(key) != value}


def rerun_commands(cfg: ExperimentConfig) -> tuple[str, str]:
    """The ``alvit run`` and ``papermill`` commands (shell, one option a line) that reproduce ``cfg``.

    Both give every notebook knob (dataset, model, noise, strategy, budget, seed), the CPU threads
    (``threads``: results depend on them) and every other key that differs from alvit's defaults:
    ``alvit run`` through ``--set``, papermill in ``SETTINGS`` through ``-y``.
    """
    knobs = {key: lookup(cfg, key) for key in KNOBS.values()}  # always shown: they name the run
    settings = {"threads": cfg.threads} | {
        key: value for key, value in _changed_from_defaults(cfg).items() if key not in knobs
    }
    run = ["alvit run"] + [
        f"--set {shlex.quote(f'{key}={_yaml_value(value)}')}" for key, value in {**knobs, **settings}.items()
    ]
    papermill = ["papermill notebooks/experiment.ipynb out.ipynb --engine alvit", "-p CONFIG None"]
    papermill += [f"-p {param} {shlex.quote(_papermill_value(knobs[key]))}" for param, key in KNOBS.items()]
    if settings:
        block = yaml.safe_dump({"SETTINGS": settings}, default_flow_style=False, sort_keys=False, width=float("inf"))
        papermill.append(f"-y {shlex.quote(block.rstrip())}")
    return " \\\n  ".join(run), " \\\n  ".join(papermill)


VERSIONS = (("Python", "python"), ("torch", "torch"), ("timm", "timm"), ("numpy", "numpy"))  # name, env.json key


def rebuild_requirements(env: dict[str, Any]) -> str:
    """What a rebuild needs to match a run bit for bit, from its ``env.json``: the processor, the CPU
    threads and the versions ("" for a folder that does not record them, e.g. a simulated one)."""
    versions = [f"{name} {env[key]}" for name, key in VERSIONS if env.get(key)]
    if env.get("simulated") or not versions:
        return ""
    device = env.get("device", "cpu")
    # Folders from before the processor was recorded name the platform only.
    where = f"the processor {env['cpu']}" if env.get("cpu") else f"the platform {env.get('platform', 'of this run')}"
    where += f" and the GPU {env['device_name']}" if device.startswith("cuda") else ""
    threads = env.get("torch_threads")
    count = f"{threads} CPU thread{'s' if threads != 1 else ''}" if threads else "the same CPU threads"
    return (
        f"A rebuild gives this page's numbers bit for bit with the same arithmetic: {where}, {count} (the "
        f"`threads` key; `OMP_NUM_THREADS` does not change it) and {', '.join(versions)}, as the run's "
        "`env.json` records them. On another processor or version the last digits of a sum can differ, and "
        "with them the queries and every later round."
    )


def page_introduction(cfg: ExperimentConfig, env: dict[str, Any] | None = None) -> str:
    """The first cell of a run's page: its title, what it shows, the commands that rerun it and, from
    the run's ``env.json`` (``env``), what a rebuild needs to match it."""
    run, papermill = rerun_commands(cfg)
    requirements = rebuild_requirements(env or {})
    return (
        f"# {page_title(cfg)}\n\n"
        "One active-learning run under label noise, trained and evaluated round by round with `alvit`. "
        "Rerun it from a checkout of the repository (after `make install`, with `.venv/bin/` in front "
        "of the commands, or inside the virtual environment):\n\n"
        f"```bash\n{run}\n```\n\n"
        "or rerun this page itself, with any parameter changed:\n\n"
        f"```bash\n{papermill}\n```\n\n"
        "Either writes its run folder to `results/<run-id>/`; rerunning resumes an interrupted run "
        "and never redoes finished rounds." + (f"\n\n{requirements}" if requirements else "")
    )


def without_builder_paths(notebook: Any, parameters: dict[str, Any] | None = None) -> None:
    """Make an executed notebook fit to publish: the injected parameters off the page, no builder paths.

    The injected-parameters cell is hidden (the page states its commands in prose) and, when
    ``parameters`` are given, rewritten with them, as is papermill's record of them; papermill's
    record of the input and output paths is dropped. (The book hands its notebooks paths relative
    to its root in the first place: :func:`alvit.book.build.as_seen_from`.)
    """
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" not in tags:
            continue
        if parameters is not None:
            cell.source = "# Parameters\n" + "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
        if "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    record = notebook.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        record.pop(key, None)
    if parameters is not None:
        record["parameters"] = parameters


def page_title(cfg: ExperimentConfig) -> str:
    """``model · noise kind rate · strategy · seed N (dataset)``: a run page's heading (the strategy
    ``entropy, calibrated aware`` where it acquires with a temperature, acq.calibrate)."""
    dataset = cfg.dataset.split(":")[0]
    strategy = cfg.strategy if cfg.acq.calibrate == "none" else f"{cfg.strategy}, calibrated {cfg.acq.calibrate}"
    return f"{cfg.model} · {cfg.noise_name} · {strategy} · seed {cfg.seed} ({dataset})"


def render_page(
    run_dir: Path, page: Path, cfg: ExperimentConfig | None = None, cell_timeout_s: float | None = None
) -> Path:
    """Execute the experiment notebook for the run in ``run_dir`` into ``page`` and title it.

    ``cfg`` defaults to the run folder's own ``config.yaml``. ``cell_timeout_s`` bounds each cell
    (papermill's ``execution_timeout``). Errors propagate: the caller records them.
    """
    import nbformat

    cfg = cfg if cfg is not None else load_config(run_dir / "config.yaml")
    page.parent.mkdir(parents=True, exist_ok=True)
    run_notebook(
        paths.notebook_template(EXPERIMENT_NOTEBOOK),
        page,
        parameters=notebook_parameters(cfg, run_dir),
        log_output=False,
        execution_timeout=cell_timeout_s,
    )
    executed = nbformat.read(str(page), as_version=4)
    executed.cells[0].source = page_introduction(cfg, RunFolder(run_dir).read_env())
    without_builder_paths(executed, {**notebook_parameters(cfg, run_dir), "RUN_DIR": None})
    nbformat.write(executed, str(page))
    return page


# jupyter_client chooses free TCP ports for a kernel, which binds them a moment later; with several
# kernels starting at once another process can take one in between ("Address already in use") and
# the kernel dies before it answers. No cell has run then, so starting it again is safe.
KERNEL_DIED_AT_START = "Kernel died before replying to kernel_info"
KERNEL_STARTS = 3


def run_notebook(template: Path, output: Path, **options: Any) -> None:
    """papermill's ``execute_notebook`` of ``template`` into ``output`` on the python3 kernel with
    :func:`encrypted_kernel_manager`, ``options`` passed on; a kernel that dies before it starts
    is started again, up to :data:`KERNEL_STARTS` times in all. Other errors propagate at once."""
    import papermill

    for start in range(1, KERNEL_STARTS + 1):
        try:
            papermill.execute_notebook(
                str(template),
                str(output),
                progress_bar=False,
                kernel_name="python3",
                kernel_manager_class=encrypted_kernel_manager(),
                **options,
            )
            return
        except RuntimeError as err:
            if KERNEL_DIED_AT_START not in str(err) or start == KERNEL_STARTS:
                raise
            log.warning(
                "%s: the kernel died before it started (start %d of %d); starting it again",
                output.name,
                start,
                KERNEL_STARTS,
            )


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
