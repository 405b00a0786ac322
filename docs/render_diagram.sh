#!/usr/bin/env bash
# Re-render docs/architecture.mmd -> docs/architecture.svg and docs/architecture.png, offline.
#
#   bash docs/render_diagram.sh
#
# Uses @mermaid-js/mermaid-cli (mmdc) driving a system Chromium through puppeteer. Nothing is
# installed into the repo: the npm packages go to a cache dir outside it (installed on first
# run only, from the npm registry; puppeteer's own browser download is skipped), and Chromium
# is Debian's package (installed with apt-get when missing and running as root).
#
# Environment overrides:
#   PUFFY_MMDC_CACHE   npm install dir   (default: ${XDG_CACHE_HOME:-$HOME/.cache}/puffy-mmdc)
#   CHROMIUM_BIN       browser binary    (default: /usr/bin/chromium, as in docs/puppeteer-config.json)
#   SKIP_PNG=1         render only the SVG
set -euo pipefail

DOCS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$DOCS/architecture.mmd"
SVG="$DOCS/architecture.svg"
PNG="$DOCS/architecture.png"
PUPPETEER_CFG="$DOCS/puppeteer-config.json"

# Pinned so re-renders are reproducible; both support Node >= 18.19 (mmdc 12 / puppeteer 25 need Node 22).
MMDC_VERSION="11.17.0"
PUPPETEER_VERSION="24.43.1"
CACHE="${PUFFY_MMDC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/puffy-mmdc}"
CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"

log() { printf '[render_diagram] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

start=$(date +%s)

# --- Node / npm ------------------------------------------------------------------------------
command -v node >/dev/null && command -v npm >/dev/null \
    || die "node and npm are required (Debian: apt-get install -y nodejs npm)"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>18||(a===18&&b>=19)?0:1)' \
    || die "Node >= 18.19 required, found $(node --version)"

# --- Chromium --------------------------------------------------------------------------------
if [ ! -x "$CHROMIUM_BIN" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing Debian chromium (apt-get)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-liberation >/dev/null
    fi
    [ -x "$CHROMIUM_BIN" ] || die "no browser at $CHROMIUM_BIN: run 'sudo apt-get install -y chromium fonts-liberation' or set CHROMIUM_BIN"
fi

# --- mermaid-cli into the cache dir (not the repo) -------------------------------------------
STAMP="$CACHE/.installed-mmdc-$MMDC_VERSION-puppeteer-$PUPPETEER_VERSION"
MMDC="$CACHE/node_modules/.bin/mmdc"
if [ ! -f "$STAMP" ] || [ ! -x "$MMDC" ]; then
    log "installing @mermaid-js/mermaid-cli@$MMDC_VERSION + puppeteer@$PUPPETEER_VERSION into $CACHE"
    mkdir -p "$CACHE"
    rm -f "$CACHE"/.installed-mmdc-*
    [ -f "$CACHE/package.json" ] || printf '{ "name": "puffy-mmdc", "private": true }\n' > "$CACHE/package.json"
    PUPPETEER_SKIP_DOWNLOAD=1 PUPPETEER_SKIP_CHROMIUM_DOWNLOAD=1 \
        npm install --prefix "$CACHE" --no-audit --no-fund --loglevel=error \
        "@mermaid-js/mermaid-cli@$MMDC_VERSION" "puppeteer@$PUPPETEER_VERSION" >&2
    touch "$STAMP"
fi

# --- configs ---------------------------------------------------------------------------------
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# A browser other than the one in the committed puppeteer config: same args, other path.
if [ "$CHROMIUM_BIN" != "$(node -p "require('$PUPPETEER_CFG').executablePath")" ]; then
    node -e 'const c=require(process.argv[1]); c.executablePath=process.argv[2]; console.log(JSON.stringify(c))' \
        "$PUPPETEER_CFG" "$CHROMIUM_BIN" > "$TMP/puppeteer.json"
    PUPPETEER_CFG="$TMP/puppeteer.json"
fi

# Mermaid settings: Arial metrics (Liberation Sans on Debian) so text measured here fits boxes
# wherever the SVG is viewed; plain SVG <text> labels (htmlLabels off) so non-browser SVG
# renderers (rsvg, Inkscape, PDF tools) show the labels too; a fixed shape seed so an unchanged
# source re-renders byte-identically (no churn in git).
cat > "$TMP/mermaid.json" <<'JSON'
{
  "theme": "default",
  "fontFamily": "Arial, Helvetica, 'Liberation Sans', sans-serif",
  "htmlLabels": false,
  "markdownAutoWrap": false,
  "handDrawnSeed": 1,
  "flowchart": { "htmlLabels": false, "curve": "basis", "padding": 12, "wrappingWidth": 600 }
}
JSON

# --- render ----------------------------------------------------------------------------------
export PUPPETEER_SKIP_DOWNLOAD=1
log "rendering $(basename "$SRC") -> $(basename "$SVG")"
"$MMDC" -q -i "$SRC" -o "$SVG" -p "$PUPPETEER_CFG" -c "$TMP/mermaid.json" -b white
# Mermaid writes each word after the first as a tspan starting with a space; non-browser renderers
# (rsvg, ImageMagick) drop that space under the default xml:space, so preserve it explicitly.
node -e 'const fs=require("fs"),f=process.argv[1],s=fs.readFileSync(f,"utf8");
  if(!/^<svg[^>]*xml:space=/.test(s)) fs.writeFileSync(f,s.replace(/^<svg /,"<svg xml:space=\"preserve\" "));' "$SVG"
if [ "${SKIP_PNG:-0}" != 1 ]; then
    log "rendering $(basename "$SRC") -> $(basename "$PNG")"
    "$MMDC" -q -i "$SRC" -o "$PNG" -p "$PUPPETEER_CFG" -c "$TMP/mermaid.json" -b white -w 2000 -s 2
fi

log "done in $(( $(date +%s) - start ))s"
