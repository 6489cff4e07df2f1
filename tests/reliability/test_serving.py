"""gunicorn as shipped: a socket per worker (reuse_port) without silently sharing a taken port."""

from __future__ import annotations

import subprocess

import pytest
import requests

from tests.spark_server import SparkServer
from tests.support.servers import PYTHON, ROOT

from .live import access_log, live_server

pytestmark = pytest.mark.slow  # gunicorn processes


def test_a_second_server_on_a_taken_port_fails_instead_of_sharing_it(spark_server: SparkServer):
    with live_server(spark_url=spark_server.url, spark_key="test-key:test-secret") as first:
        second = subprocess.run(  # noqa: S603 - a fixed argv (python -m gunicorn), no shell
            [PYTHON, "-m", "gunicorn", "-c", "gunicorn.conf.py", "chatsite.wsgi"],
            cwd=ROOT,
            env=first.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert "already in use" in second.stdout + second.stderr
        # The first server kept every connection to itself.
        assert requests.get(f"{first.url}/healthz", timeout=5).status_code == 200


def test_each_worker_accepts_on_its_own_socket(spark_server: SparkServer):
    with live_server(spark_url=spark_server.url, spark_key="test-key:test-secret") as server:
        for _ in range(40):  # new connections: the kernel spreads them over the workers' sockets
            requests.get(f"{server.url}/healthz", headers={"Connection": "close"}, timeout=5)
        workers = {pid for pid, _, line in access_log(server) if "/healthz" in line}
        assert workers == set(server.worker_pids())
