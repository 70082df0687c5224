"""papermill's ``alvit`` engine: ``papermill ... --engine alvit`` runs a notebook without kernel warnings.

papermill's own command line starts kernels with jupyter_client's plain manager, and ipykernel 7
then warns "Kernel is running over TCP without encryption" at every start. This engine is
papermill's nbclient engine with :func:`alvit.book.pages.encrypted_kernel_manager`, the manager
``alvit sweep`` and ``alvit book`` use; ``pyproject.toml`` registers it under the entry point
group ``papermill.engine``, so installing alvit makes ``--engine alvit`` available.
"""

from __future__ import annotations

from typing import Any

from papermill.engines import NBClientEngine

from alvit.book.pages import encrypted_kernel_manager


class QuietEngine(NBClientEngine):
    """nbclient, with transport encryption where both sides can, and no stray interrupt at shutdown."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        kwargs.setdefault("kernel_manager_class", encrypted_kernel_manager())
        return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)


__all__ = ["QuietEngine"]
