"""
Applications built on the library: the ``txzmq2`` command (:mod:`txzmq2.app.cli`), the
``twistd`` plugins' option parsers and makers (:mod:`txzmq2.app.tap`), and the services both
run (:mod:`txzmq2.app.service`), among them :class:`ZmqService` for your own services.

Nothing in the library layers (``txzmq2.*`` outside this package) imports from here.
"""

from __future__ import annotations

from txzmq2.app.service import ZmqDeviceService, ZmqService

__all__ = ["ZmqDeviceService", "ZmqService"]
