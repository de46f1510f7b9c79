"""Names and ports shared by the local fault harness, docker-compose.yml and the Vagrantfile.

Every ensemble member N (1-based) sits behind a Toxiproxy proxy named ``zkN``.  In the
docker-compose and Vagrant setups the proxies listen on ``PROXY_BASE_PORT + N - 1``
(2181..2185 for five members) and the Toxiproxy API on ``TOXIPROXY_API_PORT``; the local
harness uses free loopback ports instead, with the same names.
"""

from __future__ import annotations

TOXIPROXY_VERSION = "v2.12.0"
TOXIPROXY_API_PORT = 8474
PROXY_BASE_PORT = 2181
ZOOKEEPER_CLIENT_PORT = 2181
DEPLOY_SIZE = 5
VAGRANT_IP = "192.168.100.67"


def proxy_name(member: int) -> str:
    """The proxy in front of member ``member`` (1-based)."""
    return f"zk{member}"


def deploy_proxy_port(member: int) -> int:
    """The port of proxy ``zk<member>`` in the docker-compose and Vagrant setups."""
    return PROXY_BASE_PORT + member - 1


def deploy_peers(host: str, size: int = DEPLOY_SIZE) -> str:
    """``ZOOKEEPER_PEERS`` for the docker-compose (host 127.0.0.1) or Vagrant setup."""
    return ",".join(f"{host}:{deploy_proxy_port(m)}" for m in range(1, size + 1))
