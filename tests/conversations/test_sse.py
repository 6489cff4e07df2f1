"""The probe that notices a client hanging up while the model is still thinking."""

from __future__ import annotations

import os
import resource
import socket
from collections.abc import Iterator

import pytest
from rest_framework.test import APIRequestFactory

from conversations.api.sse import _client_gone_probe


@pytest.fixture
def high_descriptor_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected socket pair whose server end has a descriptor above select()'s 1024 limit,
    as in a gevent worker holding thousands of streams."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the descriptor limit ({hard}) is too low")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    fillers = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    server, client = socket.socketpair()
    try:
        assert server.fileno() > 1024
        yield server, client
    finally:
        server.close()
        client.close()
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _request_with(sock: socket.socket):
    return {"gunicorn.socket": sock}


def test_probe_is_none_where_the_server_does_not_expose_the_socket() -> None:
    assert _client_gone_probe(APIRequestFactory().post("/").META) is None


def test_probe_tells_an_open_client_from_a_closed_one_past_descriptor_1024(
    high_descriptor_pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = high_descriptor_pair
    gone = _client_gone_probe(_request_with(server))
    assert gone is not None
    assert gone() is False
    client.sendall(b"GET / HTTP/1.1\r\n")  # a pipelined request is not a hang-up
    assert gone() is False
    client.close()
    server.recv(64)  # consume the pipelined bytes; what is left is the end of the stream
    assert gone() is True
