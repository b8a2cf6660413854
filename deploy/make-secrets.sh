#!/bin/sh
# Per-deployment secrets for docker-compose: run once before the first `docker compose up`.
#   deploy/make-secrets.sh [--broker-name NAME]... [ENDPOINT_ID ...]
# Makes (all git-ignored; an existing secret is kept, delete it to renew it):
#   .env                            MINIO_ROOT_PASSWORD, GRAFANA_ADMIN_PASSWORD (docker-compose.yml reads them)
#   deploy/secrets/<user>.password  one random MQTT password per user, mounted into its service as a secret:
#                                   edge (ingest), learner, split, apps, cam-1, cam-2 and every ENDPOINT_ID
#   deploy/secrets/minio-secret-key the MinIO root password again, for the edge's S3 client
#   deploy/mosquitto/passwords      the MQTT passwords hashed (PBKDF2-SHA512, Mosquitto's $7$ format)
#   deploy/mosquitto/certs/         a private CA and the broker's TLS certificate (make-certs.sh)
# --broker-name: a host name or address endpoints outside compose use for the broker (a Pi on the LAN);
# it goes into the server certificate. Needs openssl and python3. EDGELOOP_SECRETS_ROOT writes
# elsewhere than the repository (the tests do).
set -eu

root=${EDGELOOP_SECRETS_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
here=$(cd "$(dirname "$0")" && pwd)
names=""
users="edge learner split apps cam-1 cam-2"
while [ $# -gt 0 ]; do
    case "$1" in
        --broker-name) names="$names ${2:?--broker-name needs a value}"; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) users="$users $1"; shift ;;
    esac
done

secrets="$root/deploy/secrets"
mkdir -p "$secrets" "$root/deploy/mosquitto"
chmod 700 "$secrets"
umask 077

random_secret() {  # 32 hex characters: safe in .env, YAML and shells without quoting
    openssl rand -hex 16
}

keep_or_make() {  # $1: file; prints the secret in it, making one first if it is missing
    if [ ! -s "$1" ]; then
        random_secret > "$1"
        # the services read their secret through a bind mount as their own uid; the directory stays 0700
        chmod 644 "$1"
    fi
    cat "$1"
}

for user in $users; do
    case "$user" in
        *[!A-Za-z0-9_-]*|"") echo "not an endpoint id: $user" >&2; exit 2 ;;
    esac
    keep_or_make "$secrets/$user.password" > /dev/null
done
minio=$(keep_or_make "$secrets/minio-secret-key")

# Mosquitto's password file, rebuilt from the secrets every time (hashes only; salted afresh)
python3 - "$secrets" $users > "$root/deploy/mosquitto/passwords.new" <<'PY'
import base64, hashlib, os, sys
folder, users = sys.argv[1], sys.argv[2:]
for user in dict.fromkeys(users):
    password = open(os.path.join(folder, user + ".password")).read().strip().encode()
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password, salt, 101)
    print(f"{user}:$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}")
PY
chmod 644 "$root/deploy/mosquitto/passwords.new"
mv "$root/deploy/mosquitto/passwords.new" "$root/deploy/mosquitto/passwords"

env_file="$root/.env"
touch "$env_file"
chmod 600 "$env_file"
add_env() {  # $1: name, $2: value; an existing line wins
    grep -q "^$1=" "$env_file" || printf '%s=%s\n' "$1" "$2" >> "$env_file"
}
add_env MINIO_ROOT_PASSWORD "$minio"
add_env GRAFANA_ADMIN_PASSWORD "$(random_secret)"

if [ -n "$names" ] || [ ! -s "$root/deploy/mosquitto/certs/server.crt" ]; then
    # shellcheck disable=SC2086  # one argument per name
    "$here/mosquitto/make-certs.sh" "$root/deploy/mosquitto/certs" $names
fi

echo "secrets for: $users"
echo "  $env_file, $secrets/, $root/deploy/mosquitto/passwords, $root/deploy/mosquitto/certs/"
echo "  Grafana admin password: grep GRAFANA_ADMIN_PASSWORD $env_file"
