#!/bin/sh
# One-shot enrolment of the compose deployment's holders (the `enrol` service, once the
# gateway answers): for each site a holder organisation and its steward, the organisation's
# signing key (registered at the gateway), and the organisation's endorsement of the site
# agent's identity key, which completes that agent's site.yaml. The stewards' API keys go
# to /shared/holders.env (mode 0600); each steward then registers its own site, whose agent
# proves the endorsement. Nothing here runs twice.
set -eu
[ -f /shared/holders.env ] && exit 0
export BLINDGATE_URL=${BLINDGATE_URL:-http://gateway:8080}
export BLINDGATE_API_KEY
BLINDGATE_API_KEY=$(cat /shared/admin.key)
python3 - <<'PY'
import os, sys, time, urllib.request
url = os.environ["BLINDGATE_URL"] + "/readyz"
for _ in range(120):
    try:
        if urllib.request.urlopen(url, timeout=2).status == 200:
            sys.exit(0)
    except OSError:
        pass
    time.sleep(1)
sys.exit("the gateway did not become ready")
PY
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
mkdir -p /shared/keys && chmod 700 /shared/keys
umask 077
: > /shared/holders.env.new
for site in north east harbour; do
  dir=/shared/sites/$site
  org=$(blindgate org create "Hospital $site" --json | field id)
  key=$(blindgate principal create "$site-steward" --org "$org" --role holder --json \
    | field api_key)
  public=$(blindgate keys generate --out "/shared/keys/$site.pem")
  blindgate org set-key "$org" "$public" > /dev/null
  blindgate site endorse --key "/shared/keys/$site.pem" --org "$org" \
    --agent-key "$(cat "$dir/agent.pub")" --name "site-$site" \
    --out "$dir/endorsement.json" > "$dir/identity.yaml"
  cat "$dir/site.base.yaml" "$dir/identity.yaml" > "$dir/site.yaml"
  upper=$(echo "$site" | tr a-z A-Z)
  echo "export ${upper}_ORG=$org ${upper}_KEY=$key" >> /shared/holders.env.new
  echo "holder of site-$site: organisation $org, API key $key"
done
mv /shared/holders.env.new /shared/holders.env
