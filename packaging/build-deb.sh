#!/usr/bin/env bash
# Build nordiqd_<version>_<arch>.deb with dpkg-deb: a self-contained virtual environment
# under /opt/nordiqd (nordiqd, torch and every dependency), /usr/bin/nordiqd, the systemd
# unit, the default config as a conffile and the maintainer scripts of packaging/debian/.
#
# Usage: packaging/build-deb.sh [OUT_DIR]            (default OUT_DIR: dist/)
# Environment:
#   DEB_VERSION    package version (default: nordiqd.__version__)
#   TORCH_SPEC     torch requirement (default torch==2.13.0, the CPU wheel)
#   BUILD_PYTHON   python whose pip installs the packages (default .venv/bin/python); its
#                  installed versions pin the package's (pip freeze as constraints), so
#                  the .deb holds what `make test` ran against. PIN_FROM_BUILD=0 turns it off.
#   TARGET_PYTHON  the interpreter the package runs on (default /usr/bin/python3.11)
#   DEB_COMPRESS   dpkg-deb compressor and level (default "gzip 6": ~1.5 min for the ~1.4 GiB
#                  tree on one core; "xz 6" is ~25% smaller but ~15x slower; "zstd 10" is
#                  smaller and as fast but needs dpkg >= 1.21.18 (Debian 12) to install)
#
# The venv is made in a staging tree at <stage>/opt/nordiqd and then made to live at
# /opt/nordiqd: its python is a symlink to TARGET_PYTHON (the package depends on that
# Debian interpreter, never on the host's Python packages), script shebangs and
# pyvenv.cfg are rewritten from the staging path to /opt/nordiqd. The build fails if the
# staging path is left anywhere in the tree. No byte code is shipped: postinst compiles
# it, as Debian's py3compile does, and prerm removes it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
out=$(mkdir -p "${1:-$src/dist}" && cd "${1:-$src/dist}" && pwd)
prefix=/opt/nordiqd

BUILD_PYTHON=${BUILD_PYTHON:-$src/.venv/bin/python}
TARGET_PYTHON=${TARGET_PYTHON:-/usr/bin/python3.11}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
PIN_FROM_BUILD=${PIN_FROM_BUILD:-1}
read -r compressor level <<<"${DEB_COMPRESS:-gzip 6}"
version=${DEB_VERSION:-$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$src/nordiqd/__init__.py")}
arch=$(dpkg --print-architecture)
[ -n "$version" ] || { echo "build-deb: cannot read __version__ from nordiqd/__init__.py" >&2; exit 1; }
[ -x "$TARGET_PYTHON" ] || { echo "build-deb: $TARGET_PYTHON missing (apt-get install python3.11)" >&2; exit 1; }
[ -x "$BUILD_PYTHON" ] || { echo "build-deb: $BUILD_PYTHON missing (make install)" >&2; exit 1; }
pydeb=$("$TARGET_PYTHON" -c 'import sys; print("python%d.%d" % sys.version_info[:2])')

work=$(mktemp -d "${TMPDIR:-/tmp}/nordiqd-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
stage=$work/root
venv=$stage$prefix
started=$(date +%s)
step() { printf 'build-deb: [%4ss] %s\n' $(($(date +%s) - started)) "$*"; }

step "nordiqd $version ($arch) for $pydeb, $TORCH_SPEC"
"$TARGET_PYTHON" -m venv --without-pip "$venv"

step "building the nordiqd wheel"
# From a copy of the sources (git's tracked and not-ignored files, or the tree minus
# build outputs), so the build leaves nothing in the source tree.
mkdir "$work/src"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$src" && git ls-files -z --cached --others --exclude-standard \
        | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -C "$work/src" -xf -
else
    tar -C "$src" --exclude=./.venv --exclude=./.git --exclude=./build --exclude=./dist -cf - . \
        | tar -C "$work/src" -xf -
fi
"$BUILD_PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$work/wheel" "$work/src"
wheel=$(ls "$work"/wheel/nordiqd-*.whl)

: >"$work/constraints.txt"
if [ "$PIN_FROM_BUILD" = 1 ]; then
    # Pin every dependency to the version the build venv (and so `make test`) uses.
    "$BUILD_PYTHON" -m pip freeze --exclude-editable --all 2>/dev/null \
        | grep -v -E '^(pip|setuptools|wheel|nordiqd)==| @ ' >"$work/constraints.txt" || true
fi

step "installing nordiqd and its dependencies into $prefix"
# (The grep drops pip's notes about local index folders that lack a package.)
"$BUILD_PYTHON" -m pip --python "$venv/bin/python" install -q --no-compile --no-warn-script-location \
    --disable-pip-version-check -c "$work/constraints.txt" "$TORCH_SPEC" "$wheel" \
    2> >(grep -v "^WARNING: Location 'file:.*' is ignored" >&2)
# pip's record of where the wheel came from names the temporary build folder.
rm -f "$venv"/lib/python*/site-packages/nordiqd-*.dist-info/direct_url.json

step "moving the venv to $prefix (shebangs, activate scripts, pyvenv.cfg)"
grep -rlIF "$venv" "$venv/bin" "$venv/pyvenv.cfg" | while read -r f; do
    sed -i "s#$venv#$prefix#g" "$f"
done
find "$venv" -name '__pycache__' -prune -exec rm -rf {} +
# Shared objects are mapped, not executed: 0644 as Debian ships them (lintian
# shared-library-is-executable).
find "$venv" -type f -name '*.so*' -perm /111 -exec chmod a-x {} +
if leftover=$(grep -rlF "$stage" "$venv" | head -5) && [ -n "$leftover" ]; then
    echo "build-deb: the staging path is still written in:" >&2
    echo "$leftover" >&2
    exit 1
fi

step "laying out /usr, /etc, /lib and the documentation"
install -d -m 0755 "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/nordiqd" \
    "$stage/usr/share/doc/nordiqd" "$stage/usr/share/lintian/overrides" "$stage/DEBIAN"
ln -s "$prefix/bin/nordiqd" "$stage/usr/bin/nordiqd"
install -m 0644 "$src/etc/nordiqd.service" "$stage/lib/systemd/system/nordiqd.service"
install -m 0644 "$src/etc/nordiqd.toml" "$stage/etc/nordiqd/nordiqd.toml"
install -m 0644 "$here/copyright" "$stage/usr/share/doc/nordiqd/copyright"
install -m 0644 "$src/README.md" "$stage/usr/share/doc/nordiqd/README.md"
install -m 0644 "$here/lintian-overrides" "$stage/usr/share/lintian/overrides/nordiqd"
sed "s/@VERSION@/$version/; s/@DATE@/$(date -R -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}")/" \
    "$here/changelog" | gzip -9n >"$stage/usr/share/doc/nordiqd/changelog.gz"
chmod 0644 "$stage/usr/share/doc/nordiqd/changelog.gz"

step "control files"
for script in postinst prerm postrm; do
    install -m 0755 "$here/debian/$script" "$stage/DEBIAN/$script"
done
echo /etc/nordiqd/nordiqd.toml >"$stage/DEBIAN/conffiles"
installed_kb=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@PYTHON@/$pydeb/" \
    -e "s/@INSTALLED_SIZE@/$installed_kb/" "$here/debian/control" >"$stage/DEBIAN/control"
(cd "$stage" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' \
    | LC_ALL=C sort -z | xargs -0 md5sum >DEBIAN/md5sums)
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"
find "$stage" -type d -exec chmod 0755 {} +

deb=$out/nordiqd_${version}_${arch}.deb
step "dpkg-deb ($compressor -$level, $((installed_kb / 1024)) MiB installed)"
dpkg-deb --root-owner-group -Z"$compressor" -z"$level" --build "$stage" "$work/out.deb" >/dev/null
mv -f "$work/out.deb" "$deb"
step "built $deb ($(du -m "$deb" | cut -f1) MiB)"
