#!/bin/bash
# make-certs.sh DIR: a throw-away PKI for TLS tests (openssl CLI only).
#
# Creates in DIR:
#   ca.pem ca.key                 test CA
#   server.pem server.key         server cert for localhost / 127.0.0.1, signed by the CA
#   server.pin                    libcurl pin of the server public key (sha256//BASE64)
#   client.pem client.key         client cert (clientAuth), signed by the CA
#   other-ca.pem other-ca.key     a second, unrelated CA
#   bad-client.pem bad-client.key client cert signed by the unrelated CA
#   expired.pem expired.key       server cert for localhost, signed by the CA, expired in 2020
# All keys are EC P-256, unencrypted.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1
mkdir -p "$dir"
cd "$dir"

work=$(mktemp -d "${TMPDIR:-/tmp}/make-certs.XXXXXX")
trap 'rm -rf "$work"' EXIT

newkey () { # newkey FILE
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
  chmod 600 "$1"
}

# selfsigned_ca NAME CN
selfsigned_ca () {
  newkey "$1.key"
  openssl req -x509 -new -key "$1.key" -sha256 -days 3650 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$1.pem" 2>/dev/null
}

# leaf NAME CN CA EXTENSIONS: key + CSR + cert signed by CA, valid 10 years
leaf () {
  local name=$1 cn=$2 ca=$3 ext=$4
  newkey "$name.key"
  openssl req -new -key "$name.key" -subj "/CN=$cn" -out "$work/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$work/$name.ext"
  openssl x509 -req -in "$work/$name.csr" -CA "$ca.pem" -CAkey "$ca.key" \
    -set_serial "0x$(openssl rand -hex 8)" -sha256 -days 3650 \
    -extfile "$work/$name.ext" -out "$name.pem" 2>/dev/null
}

server_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1'
client_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth'

selfsigned_ca ca "deltafetch test CA"
selfsigned_ca other-ca "deltafetch unrelated CA"
leaf server localhost ca "$server_ext"
leaf client "deltafetch test client" ca "$client_ext"
leaf bad-client "deltafetch bad client" other-ca "$client_ext"

# Expired server cert: OpenSSL 3.0's `x509 -req` cannot set dates in the
# past, so sign it with a minimal `openssl ca` setup and explicit dates.
newkey expired.key
openssl req -new -key expired.key -subj "/CN=localhost" -out "$work/expired.csr" 2>/dev/null
mkdir -p "$work/ca/new"
: >"$work/ca/index.txt"
openssl rand -hex 8 >"$work/ca/serial"
cat >"$work/ca.cnf" <<EOF
[ca]
default_ca = test_ca
[test_ca]
dir = $work/ca
database = \$dir/index.txt
new_certs_dir = \$dir/new
serial = \$dir/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
x509_extensions = server_ext
[policy_any]
commonName = supplied
[server_ext]
$server_ext
EOF
openssl ca -batch -config "$work/ca.cnf" -cert ca.pem -keyfile ca.key \
  -startdate 20200101000000Z -enddate 20200201000000Z -notext \
  -in "$work/expired.csr" -out expired.pem 2>/dev/null

# libcurl --pinnedpubkey format: sha256// + base64(sha256(DER SubjectPublicKeyInfo))
echo "sha256//$(openssl pkey -in server.key -pubout -outform DER |
  openssl dgst -sha256 -binary | openssl base64 -A)" >server.pin
