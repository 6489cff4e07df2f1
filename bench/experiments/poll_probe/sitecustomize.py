"""Experiment, not production code: chatsite with the proposed ``_client_gone_probe`` fix.

``conversations/api/views.py``'s probe calls ``select.select()``, which refuses file descriptors
of 1024 and above; the probe takes that error for "client gone", so every stream on a high
descriptor is cut one quiet second after it starts (about 500 streams per worker). This module,
put on the server's PYTHONPATH by ``BENCH_SERVER_PYTHONPATH=bench/experiments/poll_probe``, swaps
in the same probe written with ``poll()``, to measure what the fix gives. See docs/benchmarks.md.
"""

import importlib.abc
import importlib.util
import sys


class Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "conversations.api.views":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        orig = spec.loader.exec_module

        def exec_module(module):
            orig(module)
            _patch(module)

        spec.loader.exec_module = exec_module
        return spec


def _patch(views):
    import select
    import socket

    try:
        from gevent.monkey import get_original

        poll = get_original("select", "poll")
    except ImportError:
        poll = select.poll

    def _client_gone_probe(request):
        sock = request.META.get("gunicorn.socket")
        if sock is None:
            return None

        def gone() -> bool:
            try:
                poller = poll()
                poller.register(sock.fileno(), select.POLLIN)
                if not poller.poll(0):
                    return False
                return sock.recv(1, socket.MSG_PEEK) == b""
            except OSError:
                return True

        return gone

    views._client_gone_probe = _client_gone_probe


sys.meta_path.insert(0, Hook())
