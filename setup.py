"""
The optional native extension (``txzmq2._speedups``, see ``txzmq2/_fastpath.py``). Everything
else about the package is in pyproject.toml.

The extension is built where Cython and a C compiler are available and skipped otherwise
(``optional=True``: a failed compile is a warning): txzmq2 then runs on its pure-Python path.
It needs neither libzmq's headers nor its library at build time: it finds the libzmq pyzmq
loaded when it is imported.
"""

from __future__ import annotations

from setuptools import Extension, setup


def _extensions() -> list[Extension]:
    try:
        from Cython.Build import cythonize
    except ImportError:
        return []  # no Cython: the pure-Python path only
    extension = Extension(
        "txzmq2._speedups", ["txzmq2/_speedups.pyx"], include_dirs=["txzmq2"], libraries=["dl"]
    )
    extensions: list[Extension] = cythonize([extension], quiet=True)
    for built in extensions:
        built.optional = True  # set here: cythonize's copies do not keep it
    return extensions


setup(ext_modules=_extensions())
