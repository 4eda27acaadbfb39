#!/usr/bin/env bash
# Test certificates for wss benchmarks and tests (openssl CLI only): a root CA, a server
# certificate for 127.0.0.1, ::1 and localhost signed by it (or by an intermediate CA), and the
# broken variants the TLS failure causes are tested with.
#
#   bash benches/tls-certs.sh DIR [--intermediate]
#
# Writes into DIR (created if missing):
#   ca.pem, ca.key              the root; give ca.pem to clients (`ringws bench --ca-file`)
#   server.key                  the server's private key (PKCS#8)
#   server.pem                  the server's certificate alone (the leaf)
#   server-chain.pem            the chain a server presents: the leaf, then the intermediate
#                               with --intermediate (identical to server.pem without it)
#   intermediate.pem, .key      with --intermediate only: the CA that signs the leaf
#   wrong-name.pem              same key, valid only for wrong-name.invalid (name mismatch)
#   expired.pem                 same key and names, valid from 2020-01-01 to 2020-01-02
#   not-yet-valid.pem           same key and names, valid from 2099-01-01 to 2099-01-02
#   self-signed.pem             same key and names, signed by itself (unknown issuer)
# Settings (environment): KEY=ec (P-256, the default) or KEY=rsa (2048 bits); DAYS=30.
set -euo pipefail

DIR=${1:?usage: bash benches/tls-certs.sh DIR [--intermediate]}
INTERMEDIATE=0
case ${2:-} in
    "") ;;
    --intermediate) INTERMEDIATE=1 ;;
    *) echo "unknown option ${2}; usage: bash benches/tls-certs.sh DIR [--intermediate]" >&2; exit 2 ;;
esac
KEY=${KEY:-ec}
DAYS=${DAYS:-30}
mkdir -p "$DIR"
cd "$DIR"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

newkey() {
    case $KEY in
        ec) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null ;;
        rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null ;;
        *) echo "KEY=$KEY: use ec or rsa" >&2; exit 2 ;;
    esac
}

cat >"$WORK/ext.cnf" <<'EOF'
[ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[intermediate]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[server]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[wrong_name]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong-name.invalid
[self_signed]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
EOF

# sign CSR ISSUER_CERT ISSUER_KEY SECTION OUT [extra x509 args]
sign() {
    local csr=$1 ca=$2 cakey=$3 section=$4 out=$5
    shift 5
    openssl x509 -req -in "$csr" -CA "$ca" -CAkey "$cakey" -CAcreateserial \
        -CAserial "$WORK/serial" -extfile "$WORK/ext.cnf" -extensions "$section" \
        -sha256 -out "$out" "$@" 2>/dev/null
}

newkey ca.key
openssl req -new -x509 -key ca.key -subj "/CN=ringws test root CA" -days "$DAYS" -sha256 \
    -config "$WORK/ext.cnf" -extensions ca -out ca.pem 2>/dev/null
ISSUER=ca.pem
ISSUER_KEY=ca.key
if ((INTERMEDIATE)); then
    newkey intermediate.key
    openssl req -new -key intermediate.key -subj "/CN=ringws test intermediate CA" \
        -out "$WORK/intermediate.csr" 2>/dev/null
    sign "$WORK/intermediate.csr" ca.pem ca.key intermediate intermediate.pem -days "$DAYS"
    ISSUER=intermediate.pem
    ISSUER_KEY=intermediate.key
else
    rm -f intermediate.pem intermediate.key
fi

newkey server.key
openssl req -new -key server.key -subj "/CN=localhost" -out "$WORK/server.csr" 2>/dev/null
sign "$WORK/server.csr" "$ISSUER" "$ISSUER_KEY" server server.pem -days "$DAYS"
if ((INTERMEDIATE)); then
    cat server.pem intermediate.pem >server-chain.pem
else
    cp server.pem server-chain.pem
fi

sign "$WORK/server.csr" "$ISSUER" "$ISSUER_KEY" wrong_name wrong-name.pem -days "$DAYS"
openssl req -new -x509 -key server.key -subj "/CN=localhost" -days "$DAYS" -sha256 \
    -config "$WORK/ext.cnf" -extensions self_signed -out self-signed.pem 2>/dev/null

# An expired certificate needs explicit dates, which only `openssl ca` sets on OpenSSL 3.0.
mkdir -p "$WORK/ca"
: >"$WORK/ca/index.txt"
cat >"$WORK/ca.cnf" <<EOF
[ca]
default_ca = expired
[expired]
dir = $WORK/ca
database = $WORK/ca/index.txt
new_certs_dir = $WORK/ca
serial = $WORK/ca/serial
certificate = $PWD/$ISSUER
private_key = $PWD/$ISSUER_KEY
default_md = sha256
policy = any
copy_extensions = none
unique_subject = no
[any]
commonName = supplied
EOF
echo 01 >"$WORK/ca/serial"
openssl ca -batch -config "$WORK/ca.cnf" -in "$WORK/server.csr" -out "$WORK/expired.pem" \
    -startdate 20200101000000Z -enddate 20200102000000Z \
    -extfile "$WORK/ext.cnf" -extensions server -notext 2>/dev/null
openssl x509 -in "$WORK/expired.pem" -out expired.pem
openssl ca -batch -config "$WORK/ca.cnf" -in "$WORK/server.csr" -out "$WORK/not-yet-valid.pem" \
    -startdate 20990101000000Z -enddate 20990102000000Z \
    -extfile "$WORK/ext.cnf" -extensions server -notext 2>/dev/null
openssl x509 -in "$WORK/not-yet-valid.pem" -out not-yet-valid.pem
chmod 600 ./*.key
rm -f ca.srl
echo "test certificates in $PWD (key: $KEY$( ((INTERMEDIATE)) && echo ", with an intermediate CA"))" >&2
