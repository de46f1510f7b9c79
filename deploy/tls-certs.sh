#!/bin/sh
# Make the TLS variant's certificates once: a CA, one certificate per member (tls-zk1..tls-zk5,
# valid for its service name, localhost, 127.0.0.1 and the Vagrant address) with the PEM key
# store ZooKeeper reads, and client certificates CN=client, CN=alice and CN=bob for the host.
#
#   sh deploy/tls-certs.sh [DIR]        (default deploy/tls; does nothing when DIR/ca.pem exists)
#
# docker-compose's tls-certs service runs it on first start; the Vagrantfile runs it on the host
# before `vagrant up`.  The files are throwaway test material: never commit them.
set -eu

dir="${1:-deploy/tls}"
members="${ZKSYNC_TLS_MEMBERS:-5}"
vm_ip="${ZKSYNC_VAGRANT_IP:-192.168.100.67}"
days="${ZKSYNC_TLS_DAYS:-365}"

if [ -f "$dir/ca.pem" ]; then
  echo "tls-certs: $dir/ca.pem exists, nothing to do"
  exit 0
fi
command -v openssl >/dev/null 2>&1 || { echo "tls-certs: openssl is not installed" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key ca-key.pem
openssl req -x509 -new -key ca-key.pem -subj "/CN=zksync deploy CA" -days "$days" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem

issue() {  # issue NAME SUBJECT_ALT_NAMES: NAME.pem and NAME-key.pem, signed by the CA
  key "$1-key.pem"
  openssl req -new -key "$1-key.pem" -subj "/CN=$1" -out "$1.csr"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [ -n "$2" ] && echo "subjectAltName=$2"
  } > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days "$days" \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

n=1
while [ "$n" -le "$members" ]; do
  issue "tls-zk$n" "DNS:tls-zk$n,DNS:localhost,IP:127.0.0.1,IP:$vm_ip"
  cat "tls-zk$n-key.pem" "tls-zk$n.pem" > "tls-zk$n-keystore.pem"
  n=$((n + 1))
done
for client in client alice bob; do
  issue "$client" ""
done
rm -f ca.srl
chmod 600 ./*-key.pem
chmod 644 ./tls-zk*-keystore.pem  # read by the members' zookeeper user inside their containers
echo "tls-certs: made a CA, $members member and 3 client certificates in $dir"
