#!/bin/sh
# Copy the browser libraries the map needs from node_modules/ into static/vendor/, with
# their licences, so every page asset is served from our own origin (no CDN: a CDN would
# learn who looks at a sex workers' clinic directory, and when).
#
# Usage, from the project root:  npm ci --ignore-scripts && sh scripts/vendor.sh
# The copied files are committed; node_modules/ is not.
set -eu

cd "$(dirname "$0")/.."
NM=node_modules
OUT=static/vendor

rm -rf "$OUT/leaflet" "$OUT/leaflet.markercluster"
mkdir -p "$OUT/leaflet/images" "$OUT/leaflet.markercluster"

# Leaflet: the minified build, its stylesheet and the default marker images, which
# leaflet.css finds relative to itself (images/marker-icon.png) on our origin.
cp "$NM/leaflet/dist/leaflet.js" "$NM/leaflet/dist/leaflet.css" "$OUT/leaflet/"
cp "$NM/leaflet/dist/images/"*.png "$OUT/leaflet/images/"
cp "$NM/leaflet/LICENSE" "$OUT/leaflet/LICENSE"

# Leaflet.markercluster: the minified build and its two stylesheets.
cp "$NM/leaflet.markercluster/dist/leaflet.markercluster.js" \
   "$NM/leaflet.markercluster/dist/MarkerCluster.css" \
   "$NM/leaflet.markercluster/dist/MarkerCluster.Default.css" \
   "$OUT/leaflet.markercluster/"
cp "$NM/leaflet.markercluster/MIT-LICENCE.txt" "$OUT/leaflet.markercluster/LICENSE"

# Source maps would make browsers fetch files we do not ship: drop the references.
for f in "$OUT/leaflet/leaflet.js" "$OUT/leaflet.markercluster/leaflet.markercluster.js"; do
  sed -i '/^\/\/# sourceMappingURL=/d' "$f"
done

echo "Vendored: $(cd "$OUT" && find . -type f | sort | tr '\n' ' ')"
