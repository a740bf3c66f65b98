#!/bin/sh
# One-shot set-up of the compose deployment's shared state (the `init` service):
# a development CA, the gateway's client certificate, one server certificate, identity key
# and site.yaml base per site agent, sample data for each site, and the gateway's first
# admin (its key also in /shared/admin.key for the `enrol` service, which makes the holder
# organisations that endorse the agents). Production brings its own certificates and data;
# nothing here runs twice.
set -eu
PKI=/shared/pki
if [ ! -f "$PKI/ca/ca.crt" ]; then
  blindgate pki init --dir "$PKI/ca"
  # the gateway finds its client identity at <data dir>/pki/gateway.{crt,key}, the CA at
  # <data dir>/pki/ca/ca.crt
  GATEWAY_FP=$(blindgate pki issue gateway --ca-dir "$PKI/ca" --out-dir /var/lib/blindgate/pki --kind client)
  mkdir -p /var/lib/blindgate/pki/ca && cp "$PKI/ca/ca.crt" /var/lib/blindgate/pki/ca/ca.crt
  for site in north east harbour; do
    dir=/shared/sites/$site
    mkdir -p "$dir/tls" "$dir/cache"
    blindgate pki issue "site-$site" --ca-dir "$PKI/ca" --out-dir "$dir/tls" --kind server \
      --host "site-$site" > "$dir/fingerprint"
    python3 - "$dir/admissions.csv" "$site" <<'PY'
import csv, random, sys
rng = random.Random(sys.argv[2])
with open(sys.argv[1], "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["patient_id", "district", "age", "los_days"])
    for i in range(5000):
        w.writerow([f"{sys.argv[2][0].upper()}{i:06d}", rng.choice(["north", "south", "east", "west"]),
                    rng.randint(18, 95), rng.randint(1, 30)])
PY
    # the agent's own identity key; its holder endorses it in enrol.sh
    blindgate site init --dir "$dir" > "$dir/agent.pub"
    cat > "$dir/site.base.yaml" <<YAML
listen: 0.0.0.0:50061
tls: {cert: tls/site-$site.crt, key: tls/site-$site.key, ca: /shared/pki/ca/ca.crt}
gateway_fingerprints: [$GATEWAY_FP]
assets:
  admissions.csv: {path: admissions.csv}
cache_dir: cache
minimum_isolation: medium
YAML
  done
fi
if [ ! -f /shared/admin.key ]; then
  blindgate init | tee /shared/init.out
  sed -n 's/^admin API key (shown once, store it safely): //p' /shared/init.out > /shared/admin.key
  chmod 600 /shared/admin.key && rm /shared/init.out
fi
# the gateway runs as the image's unprivileged user
chown -R 10001:10001 /var/lib/blindgate
