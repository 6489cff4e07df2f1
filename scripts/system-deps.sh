#!/bin/sh
# Debian packages the test suite drives: chromium (browser tests), postgresql, redis-server and
# nginx (scale-out test), gettext (translations), iproute2 and util-linux (the worker-death test's
# network namespace), fonts-wqy-microhei (the Chinese TrueType font PDF exports embed:
# PDF_FONT_PATH, docs/export-and-share.md; also the Chinese text of browser screenshots).
# Installs what is missing when run as root; otherwise prints the apt-get command to run.
set -eu
PACKAGES="chromium postgresql redis-server nginx gettext fonts-wqy-microhei iproute2 util-linux"
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    echo "missing Debian packages:$missing"
    echo "run: sudo apt-get install$missing   (tests that need them are skipped)"
fi
