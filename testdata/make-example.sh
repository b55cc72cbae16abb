#!/usr/bin/env bash
# Regenerates testdata/example-layout, the small layout the README's first command checks:
# two images built with umoci (sharing a base layer, with fixed timestamps so the digests
# are stable) and a signature-like referrer of one of them that only its subject keeps.
# Needs umoci, jq and sha256sum. The result is committed; rerun only to change it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/example-layout"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=1700000000
rm -rf "$out"
umoci init --layout "$out"
umoci new --image "$out:base"
umoci unpack --image "$out:base" "$work/bundle" >/dev/null
root="$work/bundle/rootfs"
mkdir -p "$root/etc" "$root/usr/bin" "$root/srv/www"
printf 'demo:x:1000:1000:demo:/home/demo:/bin/sh\n' > "$root/etc/passwd"
printf '#!/bin/sh\necho hello from strata\n' > "$root/usr/bin/hello"
chmod 0755 "$root/usr/bin/hello"
ln -s hello "$root/usr/bin/hi"
find "$root" -exec touch -h -d @1700000000 {} +
umoci repack --history.created 2023-11-14T22:13:20Z --image "$out:demo" "$work/bundle"
umoci config --history.created 2023-11-14T22:13:20Z --created 2023-11-14T22:13:20Z \
  --image "$out:demo" --config.entrypoint /usr/bin/hello --config.env GREETING=hi \
  --config.label org.opencontainers.image.title=demo
printf '<h1>hi</h1>\n' > "$root/srv/www/index.html"
touch -h -d @1700000000 "$root/srv/www/index.html" "$root/srv/www"
umoci repack --history.created 2023-11-14T22:13:20Z --image "$out:demo-web" "$work/bundle"
umoci rm --image "$out:base"
umoci gc --layout "$out"

# A referrer: an artifact manifest whose subject is demo's manifest, not in index.json.
blob() { # writes stdin as a blob, prints "digest size"
  local tmp="$work/blob" d
  cat > "$tmp"
  d=$(sha256sum "$tmp" | cut -d' ' -f1)
  cp "$tmp" "$out/blobs/sha256/$d"
  echo "sha256:$d $(stat -c %s "$tmp")"
}
subject=$(jq -c '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="demo") | {mediaType, digest, size}' "$out/index.json")
read -r empty_d empty_s < <(printf '{}' | blob)
read -r sig_d sig_s < <(printf 'signed by the example\n' | blob)
jq -cn --argjson subject "$subject" --arg ed "$empty_d" --argjson es "$empty_s" --arg sd "$sig_d" --argjson ss "$sig_s" '{
  schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
  artifactType: "application/vnd.example.signature",
  config: {mediaType: "application/vnd.oci.empty.v1+json", digest: $ed, size: $es},
  layers: [{mediaType: "text/plain", digest: $sd, size: $ss}],
  subject: $subject }' | tr -d '\n' | blob >/dev/null
find "$out" -exec touch -h -d @1700000000 {} +
echo "wrote $out"
