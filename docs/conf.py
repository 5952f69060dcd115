"""
Sphinx configuration of the txzmq2 documentation site: the Markdown pages (MyST) and an API
reference generated from the docstrings. It builds offline (no intersphinx) and is meant to
be built with warnings as errors: ``tox -e docs``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from txzmq2 import __version__  # the installed txzmq2 is the one documented

if sys.version_info >= (3, 11):
    import tomllib
else:  # the docs extra brings tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
_project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
_urls: dict[str, str] = _project["urls"]


project = "txzmq2"
author = "the txzmq2 developers"
copyright = "2026, the txzmq2 developers"
release = version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "substitution"]
# The repository's address, in one place (pyproject.toml): pages write {{repository}}.
myst_substitutions = {"repository": _urls["Repository"], "documentation": _urls["Documentation"]}

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    # What a module imports is documented where it is defined (see _skipImported) ...
    "imported-members": True,
    # ... not where an __all__ re-exports it (txzmq2.connection exports ZmqEndpoint).
    "ignore-module-all": True,
}
# Check every cross-reference the docstrings make; names from outside the project (Twisted,
# pyzmq, the standard library) have no target without intersphinx, which needs the network.
nitpicky = True
_OUTSIDE = "twisted|zmq|zope|collections|typing|types|pathlib|msgpack|json|os|enum|sqlite3|pytest"
nitpick_ignore_regex = [
    (r"py:.*", rf"_?({_OUTSIDE})\..*"),
    (r"py:.*", r"(Deferred|Failure|IReactor\w*|IPushProducer|IConsumer|ZMQError|Path|Any)"),
]

html_theme = "alabaster"
html_title = f"txzmq2 {release}"


# -- cross-references to where a name is imported from ----------------------------------------
# The reference documents each class where it is defined (txzmq2.factory.ZmqFactory); users
# and docstrings name it where they import it from (txzmq2.ZmqFactory), or name a method a
# class inherits. This resolves such a name to the documented object it is, so that nitpicky
# mode still reports every name that has no documented target at all.


def _canonical(target: str, context: list[str]) -> str | None:
    """The dotted name under which the object ``target`` names is documented, if found."""
    import importlib

    if context and "." not in target:
        # A bare name in a module's docstring: a method of the one class there that has it.
        owners = _classesWith(context[-1], target)
        if len(owners) == 1:
            context = [owners[0], *context]
    for prefix in [*context, ""]:
        dotted = f"{prefix}.{target}" if prefix else target
        parts = dotted.split(".")
        for split in range(len(parts), 0, -1):
            try:
                obj: object = importlib.import_module(".".join(parts[:split]))
            except ImportError:
                continue
            reached = split
            try:
                for attribute in parts[split:]:
                    obj = getattr(obj, attribute)
                    reached += 1
            except AttributeError:
                if reached == len(parts) - 1 and isinstance(obj, type):
                    # An instance attribute (set in __init__): its class documents it.
                    ownerName = _nameOf(obj, parts[:-1], split)
                    return None if ownerName is None else f"{ownerName}.{parts[-1]}"
                break
            return _nameOf(obj, parts, split)
    return None


def _classesWith(module: str, name: str) -> list[str]:
    """The classes defined in ``module`` that have an attribute ``name``."""
    import importlib
    import inspect

    try:
        loaded = importlib.import_module(module)
    except ImportError:
        return []
    return [
        f"{module}.{cls.__qualname__}"
        for _, cls in inspect.getmembers(loaded, inspect.isclass)
        if cls.__module__ == module and hasattr(cls, name)
    ]


def _nameOf(obj: object, parts: list[str], split: int) -> str | None:
    """Where ``obj``, reached by ``parts`` (a module, then attributes from ``split``), lives."""
    if isinstance(obj, type(sys)):
        return obj.__name__
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return f"{module}.{qualname}"
    if len(parts) - split >= 2:  # an attribute of a class (a property, an enum member)
        import importlib

        owner: object = importlib.import_module(".".join(parts[:split]))
        for attribute in parts[split:-1]:
            owner = getattr(owner, attribute)
        ownerName = _nameOf(owner, parts[:-1], split)
        return None if ownerName is None else f"{ownerName}.{parts[-1]}"
    return None


def _private(dotted: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in dotted.split("."))


def _resolve(app, env, node, contnode):  # type: ignore[no-untyped-def]
    if node.get("refdomain") != "py":
        return None
    module, cls = node.get("py:module"), node.get("py:class")
    context = [c for c in (f"{module}.{cls}" if module and cls else None, module) if c]
    canonical = _canonical(node["reftarget"], context)
    if canonical is None or canonical == node["reftarget"]:
        return contnode if _private(node["reftarget"]) else None
    domain = env.get_domain("py")
    # Where it is defined; where a package re-exports it from a private module of its own
    # (txzmq2._security.ZmqSecurity is documented as txzmq2.ZmqSecurity); or, for an
    # attribute without an entry of its own (an enum member, an instance attribute), its
    # class.
    public = ".".join(part for part in canonical.split(".") if not _private(part))
    for name in (canonical, public, canonical.rpartition(".")[0]):
        for role in ("class", "meth", "func", "attr", "exc", "data", "obj"):
            found = domain.resolve_xref(
                env, node["refdoc"], app.builder, role, name, node.copy(), contnode
            )
            if found is not None:
                return found
    if _private(canonical):
        return contnode  # private on purpose: shown as code, with no page to link to
    return None


_documenting: list[str] = []


def _noteModule(app, what, name, obj, options, lines):  # type: ignore[no-untyped-def]
    if what == "module":
        _documenting[:] = [name]


def _skipImported(app, what, name, obj, skip, options):  # type: ignore[no-untyped-def]
    """
    Document an imported member only in the package whose private module defines it
    (txzmq2.capabilities, txzmq2.rpc.expose): everything else has a page where it is
    defined, or is not ours.
    """
    defined = getattr(obj, "__module__", None)
    if skip or not isinstance(defined, str) or not _documenting:
        return None
    here = _documenting[0]
    if defined == here or (_private(defined) and defined.rpartition(".")[0] == here):
        return None
    return True


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("missing-reference", _resolve)
    app.connect("autodoc-process-docstring", _noteModule)
    app.connect("autodoc-skip-member", _skipImported)
