"""
Modules importable under a name they no longer live at: a txZMQ module name
(``txzmq2.req_rep``) or an earlier txzmq2 one (``txzmq2.cli``). Each old name is the very
module object of its new home, imported only when the old name is.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType

MOVED: dict[str, str] = {
    "txzmq2.req_rep": "txzmq2.compat.req_rep",
    "txzmq2.router_dealer": "txzmq2.compat.router_dealer",
    "txzmq2.cli": "txzmq2.app.cli",
}
"""Old module name -> the module it now is."""


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old names of :data:`MOVED` and loads each as its new module."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        """The default: a placeholder module, replaced by :meth:`exec_module`."""

    def exec_module(self, module: ModuleType) -> None:
        # The import system returns whatever sys.modules holds under the name once this
        # returns, without touching its attributes: so the old name is the new module
        # itself (one class per name, isinstance holds), its __name__ and __spec__ intact.
        sys.modules[module.__name__] = importlib.import_module(MOVED[module.__name__])


def install() -> None:
    """Make the old names importable (once per interpreter)."""
    if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModules())
