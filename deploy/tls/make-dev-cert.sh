#!/bin/sh
# A local development CA and a certificate it signs, for HAProxy's TLS frontend.
#   sh deploy/tls/make-dev-cert.sh DIR [NAME...]
# DIR receives ca.pem (trust this in your client), ca.key, and chat.pem (the
# certificate, its chain and key in one file, as HAProxy reads it). The
# certificate covers localhost, 127.0.0.1, ::1 and every NAME (DNS names or IP
# addresses). Nothing is done if DIR/chat.pem exists: put your own there instead.
set -eu
dir=${1:?usage: make-dev-cert.sh DIR [NAME...]}
shift
[ -f "$dir/chat.pem" ] && { echo "tls: $dir/chat.pem exists; kept"; exit 0; }
command -v openssl >/dev/null || { echo "tls: openssl not found (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
umask 077
san="DNS:localhost,IP:127.0.0.1,IP:::1"
for name in "$@"; do
  case "$name" in
    *[!0-9.:a-fA-F]*) san="$san,DNS:$name" ;;
    *) san="$san,IP:$name" ;;
  esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
  -subj "/CN=chat development CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$work/chat.key" -out "$work/chat.csr" 2>/dev/null
printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' "$san" > "$work/ext"
openssl x509 -req -in "$work/chat.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
  -days 825 -sha256 -extfile "$work/ext" -out "$work/chat.crt" 2>/dev/null
cat "$work/chat.crt" "$dir/ca.pem" "$work/chat.key" > "$dir/chat.pem"
chmod 644 "$dir/ca.pem" "$dir/chat.pem"
echo "tls: made $dir/chat.pem for $san; clients trust $dir/ca.pem"
