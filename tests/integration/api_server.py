"""Pytest fixture: the real Airflow REST API v2 served in-process by uvicorn, over the test metadata DB.

Import the fixture into a test module (``from tests.integration.api_server import api_server``). It
serves ``create_app(apps="core")`` on 127.0.0.1 with a free port in a background thread, with the
SimpleAuthManager and a generated admin password, and points the ``airflow_api_default`` connection
(``AIRFLOW_CONN_AIRFLOW_API_DEFAULT``) at it. Tasks run by ``dag.test()`` in the same process, and the
triggers they defer to, then read the DB that ``dag.test()`` fills through the public API.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

CONN_ENV = "AIRFLOW_CONN_AIRFLOW_API_DEFAULT"
USERNAME = "admin"


@dataclass(frozen=True)
class ApiServer:
    """Where the in-process API listens and how to log in."""

    url: str
    username: str
    password: str

    def client(self) -> httpx.Client:
        """An authenticated client for test assertions (not the code under test)."""
        token = httpx.post(
            f"{self.url}/auth/token", json={"username": self.username, "password": self.password}
        ).json()["access_token"]
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="session")
def api_server(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    import uvicorn

    password = secrets.token_urlsafe(16)
    passwords_file = tmp_path_factory.mktemp("api-auth") / "passwords.json"
    passwords_file.write_text(json.dumps({USERNAME: password}))
    env = {
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
    }
    saved = {name: os.environ.get(name) for name in [*env, CONN_ENV]}
    os.environ.update(env)

    from airflow.api_fastapi.app import create_app, purge_cached_app

    purge_cached_app()
    app = create_app(apps="core")
    sock = _free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the in-process API server did not start")
        time.sleep(0.05)

    url = f"http://127.0.0.1:{port}"
    os.environ[CONN_ENV] = json.dumps(
        {"conn_type": "airflow_api", "host": url, "login": USERNAME, "password": password}
    )
    try:
        yield ApiServer(url=url, username=USERNAME, password=password)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
