#!/usr/bin/env bash
# Provision the Vagrant VM: install Docker and docker-compose from Debian's packages, then
# start docker-compose.yml (copied to $1, default /home/vagrant/zksync) with the proxies and the
# Toxiproxy API published on every interface; $2 is the address the host reaches the VM at; $3
# "tls" runs the TLS variant (profile "tls") too.  Safe to run again.
set -euo pipefail

dir="${1:-/home/vagrant/zksync}"
ip="${2:-192.168.100.67}"
variant="${3:-}"
profiles=()
ports=(8474 2181 2182 2183 2184 2185)
if [ "$variant" = tls ]; then
  profiles=(--profile tls)
  ports+=(8475)  # the TLS members answer four-letter words over TLS only: the provision waits for their API
fi
export DEBIAN_FRONTEND=noninteractive

if ! command -v docker >/dev/null 2>&1 || ! command -v docker-compose >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io docker-compose >/dev/null
fi
systemctl enable --now docker >/dev/null
usermod -aG docker vagrant || true

cd "$dir"
ZKSYNC_BIND_IP=0.0.0.0 docker-compose -f docker-compose.yml "${profiles[@]}" up -d

# Wait (bounded) for the Toxiproxy API and for every member to serve, as leader or follower,
# through its proxy.
ask() {  # ask PORT REQUEST: what the server on 127.0.0.1:PORT answers
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; printf "%b" "$2" >&3; cat <&3' _ "$1" "$2" 2>/dev/null || true
}
for port in "${ports[@]}"; do
  for _ in $(seq 1 90); do
    if [ "$port" = 8474 ] || [ "$port" = 8475 ]; then
      ask "$port" 'GET /version HTTP/1.0\r\n\r\n' | grep -q '^HTTP/1.[01] 200' && break
    else
      ask "$port" srvr | grep -Eq '^Mode: (leader|follower)' && break
    fi
    sleep 2
  done
done
docker-compose -f docker-compose.yml "${profiles[@]}" ps
echo "provision: ZOOKEEPER_PEERS=$(for p in 2181 2182 2183 2184 2185; do printf '%s:%s,' "$ip" "$p"; done | sed 's/,$//') TOXIPROXY=$ip:8474"
if [ "$variant" = tls ]; then
  echo "provision: TLS variant: ZOOKEEPER_PEERS=$(for p in 2281 2282 2283 2284 2285; do printf '%s:%s,' "$ip" "$p"; done | sed 's/,$//') with ZOOKEEPER_TLS_CA=deploy/tls/ca.pem ZOOKEEPER_TLS_CERT=deploy/tls/client.pem ZOOKEEPER_TLS_KEY=deploy/tls/client-key.pem"
fi
