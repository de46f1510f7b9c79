"""docker-compose.yml, deploy/toxiproxy.json and the Vagrantfile agree with zksync.testing.layout.

Offline: nothing is started.  The docker-compose and vagrant checks skip when the tool is not
installed, except with CI=true, where a missing tool fails."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from zksync.testing.layout import (
    DEPLOY_SIZE,
    TLS_CLIENT_PORT,
    TLS_PREFIX,
    TLS_TOXIPROXY_API_PORT,
    TOXIPROXY_API_PORT,
    TOXIPROXY_VERSION,
    VAGRANT_IP,
    ZOOKEEPER_CLIENT_PORT,
    deploy_peers,
    deploy_proxy_port,
    deploy_tls_proxy_port,
    proxy_name,
)
from zksync.testing.timing import scaled

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
PROXIES = ROOT / "deploy" / "toxiproxy.json"
VAGRANTFILE = ROOT / "Vagrantfile"
PROVISION = ROOT / "deploy" / "vagrant-provision.sh"
MEMBERS = range(1, DEPLOY_SIZE + 1)
ZK_SERVICES = [proxy_name(m) for m in MEMBERS]  # the members' service names are the proxies' names
TLS_SERVICES = [TLS_PREFIX + name for name in ZK_SERVICES]
TLS_PROXIES = ROOT / "deploy" / "toxiproxy-tls.json"
TLS_CONFIG = ROOT / "deploy" / "zoo-tls.cfg"
TLS_CERTS = ROOT / "deploy" / "tls-certs.sh"


def require_tool(name: str) -> str:
    """The path of ``name``; skip when it is missing, or fail when CI=true."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (bash .ci/setup installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires it")
        pytest.skip(reason)
    return path


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def substitute(text: str, env: dict[str, str] | None = None) -> str:
    """Compose's ``${VAR}`` / ``${VAR:-default}`` substitution, as docker-compose does it."""
    env = env or {}

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(3) or ""
        return env.get(name) or default

    return re.sub(r"\$\{(\w+)(:-([^}]*))?\}", one, text)


def published(service: dict[str, Any], env: dict[str, str] | None = None) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) for every port the service publishes."""
    out: list[tuple[str, int, int]] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            out.append((str(entry.get("host_ip", "")), int(entry["published"]), int(entry["target"])))
            continue
        spec = substitute(str(entry), env).split("/")[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 3:
            ip, host, container = parts
        elif len(parts) == 2:
            ip, (host, container) = "", parts
        else:
            raise AssertionError(f"port {entry!r} is not published on a fixed host port")
        out.append((ip, int(host), int(container)))
    return out


def expected_ports() -> list[int]:
    return [deploy_proxy_port(m) for m in MEMBERS] + [TOXIPROXY_API_PORT]


# --- docker-compose.yml ---------------------------------------------------------------------


def test_compose_has_the_members_and_toxiproxy() -> None:
    services = {name: s for name, s in compose()["services"].items() if not s.get("profiles")}
    assert sorted(services) == sorted([*ZK_SERVICES, "toxiproxy"])
    for name in ZK_SERVICES:
        assert services[name]["image"] == "zookeeper:3.8", name


def test_members_have_their_ids_and_one_consistent_server_list() -> None:
    services = compose()["services"]
    server_lists = set()
    for member, name in zip(MEMBERS, ZK_SERVICES):
        env = environment(services[name])
        assert env["ZOO_MY_ID"] == str(member), name
        server_lists.add(env["ZOO_SERVERS"])
        assert env["ZOO_TICK_TIME"] == "500", name
        assert env["ZOO_4LW_COMMANDS_WHITELIST"] == "*", name
        assert "-Xmx256m" in env["JVMFLAGS"].split(), name
    assert len(server_lists) == 1, "every member must be given the same ZOO_SERVERS"
    entries = server_lists.pop().split()
    parsed = {}
    for entry in entries:
        match = re.fullmatch(r"server\.(\d+)=([\w.-]+):(\d+):(\d+)(?::\w+)?;(?:[\w.-]+:)?(\d+)", entry)
        assert match, f"malformed ZOO_SERVERS entry {entry!r}"
        parsed[int(match.group(1))] = (match.group(2), int(match.group(5)))
    assert parsed == {m: (proxy_name(m), ZOOKEEPER_CLIENT_PORT) for m in MEMBERS}


def test_members_publish_no_port() -> None:
    services = compose()["services"]
    for name in [*ZK_SERVICES, *TLS_SERVICES]:
        assert not services[name].get("ports"), f"{name} must be reached through its proxy only"
        assert services[name].get("network_mode") in (None, "bridge"), f"{name} must not share the host network"


def test_toxiproxy_publishes_exactly_the_proxy_and_api_ports_on_loopback_by_default() -> None:
    ports = published(compose()["services"]["toxiproxy"])
    assert sorted(host for _, host, _ in ports) == sorted(expected_ports())
    assert all(host == container for _, host, container in ports)
    assert {ip for ip, _, _ in ports} == {"127.0.0.1"}


def test_toxiproxy_image_is_the_pinned_version() -> None:
    image = compose()["services"]["toxiproxy"]["image"]
    repository, _, tag = image.rpartition(":")
    assert repository == "ghcr.io/shopify/toxiproxy"
    assert tag == TOXIPROXY_VERSION.removeprefix("v")


def test_toxiproxy_is_given_the_proxy_file() -> None:
    service = compose()["services"]["toxiproxy"]
    command = service["command"]
    args = command.split() if isinstance(command, str) else list(command)
    config = [a.split("=", 1)[1] for a in args if a.startswith("-config=")]
    if not config and "-config" in args:
        config = [args[args.index("-config") + 1]]
    assert len(config) == 1, f"toxiproxy must be started with -config: {args}"
    mounts = {}
    for volume in service["volumes"]:
        source, target = str(volume).split(":")[:2]
        mounts[target] = (COMPOSE.parent / source).resolve()
    assert mounts.get(config[0]) == PROXIES.resolve()


# --- deploy/toxiproxy.json ------------------------------------------------------------------


def test_proxy_file_names_every_member_on_its_port() -> None:
    proxies = json.loads(PROXIES.read_text())
    assert isinstance(proxies, list)
    assert [p["name"] for p in proxies] == [proxy_name(m) for m in MEMBERS]
    for member, proxy in zip(MEMBERS, proxies):
        host, _, port = proxy["listen"].rpartition(":")
        assert host in ("0.0.0.0", ""), proxy
        assert int(port) == deploy_proxy_port(member), proxy
        assert proxy["upstream"] == f"{proxy_name(member)}:{ZOOKEEPER_CLIENT_PORT}", proxy
        assert proxy.get("enabled", True) is True, proxy


def test_compose_comment_gives_the_local_peers() -> None:
    found = re.findall(r"ZOOKEEPER_PEERS=(\S+)", COMPOSE.read_text())
    assert found == [deploy_peers("127.0.0.1"), deploy_peers("127.0.0.1", tls=True)]


# --- Vagrantfile ----------------------------------------------------------------------------


def test_vagrantfile_uses_the_layout_address_and_the_compose_file() -> None:
    text = VAGRANTFILE.read_text()
    assert f'"{VAGRANT_IP}"' in text
    assert re.search(r"private_network.*ip:", text)
    assert '"docker-compose.yml"' in text
    assert '"deploy/toxiproxy.json"' in text
    assert '"deploy/vagrant-provision.sh"' in text
    script = PROVISION.read_text()
    assert 'docker-compose -f docker-compose.yml "${profiles[@]}" up -d' in script  # no profile by default
    assert "ZKSYNC_BIND_IP=0.0.0.0" in script


def test_vagrantfile_comment_gives_the_layout_peers() -> None:
    comments = "\n".join(line for line in VAGRANTFILE.read_text().splitlines() if line.lstrip().startswith("#"))
    peers = re.findall(r"ZOOKEEPER_PEERS=(\S+)", comments)
    assert len(peers) == 2, peers
    assert deploy_peers("192.168.100.67") == peers[0]
    assert deploy_peers(VAGRANT_IP) == peers[0]
    assert deploy_peers(VAGRANT_IP, tls=True) == peers[1]
    assert re.findall(r"TOXIPROXY=(\S+)", comments) == [f"{VAGRANT_IP}:{TOXIPROXY_API_PORT}"]


# --- the TLS variant ------------------------------------------------------------------------


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    out = {}
    for volume in service.get("volumes") or []:
        source, target = str(volume).split(":")[:2]
        out[target] = (COMPOSE.parent / source).resolve()
    return out


def test_the_tls_members_run_the_tls_configuration_with_their_own_key_store() -> None:
    services = compose()["services"]
    for member, name in zip(MEMBERS, TLS_SERVICES):
        service = services[name]
        assert service["profiles"] == ["tls"], name
        assert service["image"] == "zookeeper:3.8", name
        assert mounts(service) == {"/conf/zoo.cfg": TLS_CONFIG.resolve(), "/certs": (ROOT / "deploy" / "tls").resolve()}
        env = environment(service)
        assert env["ZOO_MY_ID"] == str(member)
        for store in ("ssl.keyStore", "ssl.quorum.keyStore"):
            assert f"-Dzookeeper.{store}.location=/certs/{name}-keystore.pem" in env["SERVER_JVMFLAGS"].split()
        assert services[name]["depends_on"] == {"tls-certs": {"condition": "service_completed_successfully"}}


def cfg(path: Path) -> dict[str, str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_the_tls_configuration_serves_mutual_tls_only_and_tls_between_members() -> None:
    conf = cfg(TLS_CONFIG)
    assert "clientPort" not in conf and conf["secureClientPort"] == str(TLS_CLIENT_PORT)
    assert conf["serverCnxnFactory"] == "org.apache.zookeeper.server.NettyServerCnxnFactory"
    assert conf["ssl.clientAuth"] == "need" and conf["sslQuorum"] == "true"
    assert conf["ssl.trustStore.location"] == conf["ssl.quorum.trustStore.location"] == "/certs/ca.pem"
    assert [conf[f"server.{m}"] for m in MEMBERS] == [f"{name}:2888:3888" for name in TLS_SERVICES]


def test_the_tls_proxies_front_the_tls_members_on_their_own_ports_and_api() -> None:
    service = compose()["services"]["toxiproxy-tls"]
    assert service["profiles"] == ["tls"]
    assert "-config=/config/toxiproxy.json" in service["command"]
    assert mounts(service)["/config/toxiproxy.json"] == TLS_PROXIES.resolve()
    ports = published(service)
    assert sorted(host for _, host, _ in ports) == [
        *(deploy_tls_proxy_port(m) for m in MEMBERS),
        TLS_TOXIPROXY_API_PORT,
    ]
    assert f"-port={TLS_TOXIPROXY_API_PORT}" in service["command"]
    proxies = json.loads(TLS_PROXIES.read_text())
    assert [p["name"] for p in proxies] == TLS_SERVICES
    for member, proxy in zip(MEMBERS, proxies):
        assert proxy["listen"] == f"0.0.0.0:{deploy_tls_proxy_port(member)}"
        assert proxy["upstream"] == f"{TLS_PREFIX}{proxy_name(member)}:{TLS_CLIENT_PORT}"


def test_the_certificate_script_makes_every_file_the_variant_names_once(tmp_path: Path) -> None:
    import ssl

    require_tool("openssl")
    target = tmp_path / "tls"
    done = run(["sh", str(TLS_CERTS), str(target)])
    assert done.returncode == 0, done.stderr
    for name in TLS_SERVICES:
        store = target / f"{name}-keystore.pem"
        assert b"PRIVATE KEY" in store.read_bytes() and b"CERTIFICATE" in store.read_bytes()
        decoded = ssl._ssl._test_decode_cert(str(target / f"{name}.pem"))  # type: ignore[attr-defined]
        names = set(decoded["subjectAltName"])
        assert {("DNS", name), ("IP Address", "127.0.0.1"), ("IP Address", VAGRANT_IP)} <= names
    for client in ("client", "alice", "bob"):  # usable by connect(): key matches, CA verifies
        context = ssl.create_default_context(cafile=str(target / "ca.pem"))
        context.load_cert_chain(str(target / f"{client}.pem"), str(target / f"{client}-key.pem"))
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    again = run(["sh", str(TLS_CERTS), str(target)])
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before


def test_the_vagrant_tls_variant_makes_the_certificates_and_runs_the_profile() -> None:
    text = VAGRANTFILE.read_text()
    assert 'ENV.fetch("ZKSYNC_TLS"' in text and '"tls-certs.sh"' in text
    for source in ("deploy/zoo-tls.cfg", "deploy/toxiproxy-tls.json", "deploy/tls-certs.sh", "deploy/tls"):
        assert f'source: "{source}"' in text, source
    script = PROVISION.read_text()
    assert "profiles=(--profile tls)" in script and '"${profiles[@]}" up -d' in script


def test_docker_compose_accepts_the_tls_profile() -> None:
    tool = require_tool("docker-compose")
    done = run([tool, "-f", "docker-compose.yml", "--profile", "tls", "config", "--services"], timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(done.stdout.split()) == sorted(
        [*ZK_SERVICES, "toxiproxy", *TLS_SERVICES, "tls-certs", "toxiproxy-tls"]
    )


# --- the tools themselves -------------------------------------------------------------------


def run(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 120, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """``args`` run to their end, given ``timeout`` units of test time."""
    return subprocess.run(
        args,
        cwd=cwd,
        env=dict(os.environ, **(env or {})),
        capture_output=True,
        text=True,
        timeout=scaled(timeout),
        stdin=subprocess.DEVNULL,
    )


def test_docker_compose_accepts_the_file() -> None:
    tool = require_tool("docker-compose")
    done = run([tool, "-f", "docker-compose.yml", "config", "-q"], timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_docker_compose_publishes_on_all_interfaces_for_the_vm() -> None:
    tool = require_tool("docker-compose")
    done = run([tool, "-f", "docker-compose.yml", "config"], env={"ZKSYNC_BIND_IP": "0.0.0.0"}, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    resolved = yaml.safe_load(done.stdout)["services"]["toxiproxy"]
    ports = published(resolved)
    assert sorted(host for _, host, _ in ports) == sorted(expected_ports())
    assert {ip for ip, _, _ in ports} == {"0.0.0.0"}


@pytest.mark.parametrize("variant", ["", "1"], ids=["plaintext", "tls"])
def test_vagrant_validates_the_file(tmp_path: Path, variant: str) -> None:
    tool = require_tool("vagrant")
    if variant:
        require_tool("openssl")
    checkout = tmp_path / "checkout"  # a copy: the TLS variant makes its certificates beside the file
    checkout.mkdir()
    for name in ("Vagrantfile", "docker-compose.yml"):
        shutil.copy(ROOT / name, checkout / name)
    shutil.copytree(ROOT / "deploy", checkout / "deploy", ignore=shutil.ignore_patterns("tls"))
    env = {
        "ZKSYNC_TLS": variant,
        "VAGRANT_HOME": str(tmp_path / "vagrant-home"),
        "VAGRANT_DOTFILE_PATH": str(tmp_path / "vagrant-dot"),
        "VAGRANT_CHECKPOINT_DISABLE": "1",
        "VAGRANT_NO_COLOR": "1",
    }
    done = run([tool, "validate", "--ignore-provider"], env=env, timeout=180, cwd=checkout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (checkout / "deploy" / "tls" / "ca.pem").exists() == bool(variant)


def test_a_missing_tool_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        require_tool("docker-compose")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_tool("docker-compose")
