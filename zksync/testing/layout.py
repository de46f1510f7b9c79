"""Names and ports shared by the local fault harness, docker-compose.yml and the Vagrantfile.

Every ensemble member N (1-based) sits behind a Toxiproxy proxy named ``zkN``.  In the
docker-compose and Vagrant setups the proxies listen on ``PROXY_BASE_PORT + N - 1``
(2181..2185 for five members) and the Toxiproxy API on ``TOXIPROXY_API_PORT``; the local
harness uses free loopback ports instead, with the same names.
"""

from __future__ import annotations

TOXIPROXY_VERSION = "v2.12.0"
# the TLS variant (docker-compose profile "tls", ZKSYNC_TLS=1 vagrant up): members tls-zkN on the
# secure client port behind proxies tls-zkN on TLS_PROXY_BASE_PORT + N - 1, their own API
TLS_PREFIX = "tls-"
TLS_CLIENT_PORT = 2281
TLS_PROXY_BASE_PORT = 2281
TLS_TOXIPROXY_API_PORT = 8475
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


def deploy_peers(host: str, size: int = DEPLOY_SIZE, tls: bool = False) -> str:
    """``ZOOKEEPER_PEERS`` for the docker-compose (host 127.0.0.1) or Vagrant setup (its TLS
    variant with ``tls``)."""
    port = deploy_tls_proxy_port if tls else deploy_proxy_port
    return ",".join(f"{host}:{port(m)}" for m in range(1, size + 1))


def deploy_tls_proxy_port(member: int) -> int:
    """The port of proxy ``tls-zk<member>`` in the TLS variant."""
    return TLS_PROXY_BASE_PORT + member - 1
