#!/bin/sh
# Make a private CA and a Mosquitto server certificate signed by it (openssl, EC P-256).
#   deploy/mosquitto/make-certs.sh OUT_DIR [NAME ...]
# NAME: host names or IP addresses clients use to reach the broker; "mosquitto" (the compose
# service), "localhost" and 127.0.0.1 are always included. Give the edge's LAN name or address
# too, or endpoints on other machines fail the host name check. Writes OUT_DIR/ca.crt (copy it
# to every client as tls_ca_file), ca.key (keep it private: it signs), server.crt, server.key.
# An existing CA is reused, so clients keep trusting a renewed server certificate.
set -eu

out=${1:?usage: make-certs.sh OUT_DIR [NAME ...]}
shift
mkdir -p "$out"
umask 077  # keys are born private; the broker's own files are opened up below

san="DNS:mosquitto,DNS:localhost,IP:127.0.0.1"
for name in "$@"; do
    case "$name" in
        *[!0-9.]*) san="$san,DNS:$name" ;;
        *) san="$san,IP:$name" ;;
    esac
done

if [ ! -s "$out/ca.key" ] || [ ! -s "$out/ca.crt" ]; then
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 3650 \
        -subj "/CN=edgeloop broker CA" -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null
fi
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=mosquitto" \
    -keyout "$out/server.key" -out "$out/server.csr" 2>/dev/null
printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$san" > "$out/server.ext"
openssl x509 -req -in "$out/server.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial -sha256 \
    -days 825 -extfile "$out/server.ext" -out "$out/server.crt" 2>/dev/null
rm -f "$out/server.csr" "$out/server.ext" "$out/ca.srl"
# Mosquitto in its container runs as uid 1883 and must read its key through the bind mount; on a shared
# host, `chown 1883 server.key && chmod 600 server.key` instead. ca.key stays 0600: it never leaves here.
chmod 755 "$out"
chmod 644 "$out/ca.crt" "$out/server.crt" "$out/server.key"
echo "certificates in $out (server names: $san)"
