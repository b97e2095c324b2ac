#!/usr/bin/env bash
# Builds target/package/clamscanner_VERSION-REV_ARCH.deb (dpkg-deb) or
# target/package/clamscanner-VERSION-REV.ARCH.rpm (rpmbuild) from the release binary, on a
# staged tree. Usage: packaging/build.sh deb|rpm [BIN]. README "Packages" says why not cargo-deb.
#
# Reproducible: every timestamp is the date of the newest entry in packaging/debian/changelog
# (SOURCE_DATE_EPOCH), gzip runs with -n, dpkg-deb gets root:root for every entry, and file
# lists are sorted, so two builds of one binary give the same bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PKG=$ROOT/packaging
OUT=$ROOT/target/package
KIND=${1:?usage: packaging/build.sh deb|rpm [BIN]}
BIN=${2:-$ROOT/target/release/clamscanner}
umask 022

die() { echo "packaging/build.sh: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "no release binary at $BIN (make release)"

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
# The Debian revision and the date come from the changelog, whose top entry must be this version.
CHANGELOG_VERSION=$(dpkg-parsechangelog -l "$PKG/debian/changelog" -S Version)
[ "${CHANGELOG_VERSION%-*}" = "$VERSION" ] ||
  die "packaging/debian/changelog is at $CHANGELOG_VERSION, Cargo.toml at $VERSION: add a changelog entry"
REVISION=${CHANGELOG_VERSION##*-}
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l "$PKG/debian/changelog" -S Timestamp)
export SOURCE_DATE_EPOCH
HTPASSWD=/etc/clamscanner/htpasswd

# subst FILE KEY=VALUE...: FILE with every @KEY@ replaced.
subst() {
  local file=$1 pair text
  shift
  text=$(cat "$file")
  for pair in "$@"; do text=${text//@${pair%%=*}@/"${pair#*=}"}; done
  [[ $text != *@[A-Z_]*@* ]] || die "$file: a placeholder is left: $(grep -o '@[A-Z_]*@' <<<"$text" | head -n 1)"
  printf '%s\n' "$text"
}

# stage DIR CGI_DIR APACHE_CONF WEB_GROUP UNIT_DIR ENABLE_LINE: the payload common to both packages.
stage() {
  local dir=$1 cgi_dir=$2 apache_conf=$3 group=$4 unit_dir=$5 enable=$6 doc f
  rm -rf "$dir"
  mkdir -p "$dir"
  doc=$dir/usr/share/doc/clamscanner
  # cargo's release profile keeps the symbol table; the .comment section only names compilers.
  install -d "$dir/usr/bin" "$dir$cgi_dir"
  strip --strip-unneeded --remove-section=.comment -o "$dir/usr/bin/clamscanner" "$BIN"
  chmod 0755 "$dir/usr/bin/clamscanner"
  # A real file, not a symlink: Apache refuses a symlinked CGI under `Options None` (RHEL).
  install -m 0755 "$dir/usr/bin/clamscanner" "$dir$cgi_dir/clamscanner"
  install -d "$dir/usr/share/man/man1"
  gzip -9n <docs/clamscanner.1 >"$dir/usr/share/man/man1/clamscanner.1.gz"
  install -d "$dir$(dirname "$apache_conf")"
  subst "$PKG/apache/clamscanner.conf.in" CGI_DIR="$cgi_dir" HTPASSWD="$HTPASSWD" \
    ENABLE="$enable" >"$dir$apache_conf"
  install -d "$dir$unit_dir"
  for f in clamscanner-fastcgi.socket clamscanner-fastcgi.service; do
    subst "$PKG/systemd/$f.in" WEB_GROUP="$group" HTPASSWD="$HTPASSWD" >"$dir$unit_dir/$f"
  done
  install -D -m 0644 "$PKG/systemd/clamscanner.sysusers" "$dir/usr/lib/sysusers.d/clamscanner.conf"
  install -d "$doc/examples"
  gzip -9n <README.md >"$doc/README.md.gz"
  # Every web-server configuration of cgi-bin/, whatever it holds at build time.
  for f in cgi-bin/*; do
    [ -f "$f" ] && install -m 0644 "$f" "$doc/examples/$(basename "$f")"
  done
  find "$dir" -type d -exec chmod 0755 {} +
  find "$dir" -type f ! -perm -u+x -exec chmod 0644 {} +
}

# settle DIR: every timestamp to SOURCE_DATE_EPOCH.
settle() { find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +; }

build_deb() {
  local arch dir deb shlibs size scratch f
  arch=$(dpkg --print-architecture)
  dir=$OUT/deb-root
  stage "$dir" /usr/lib/cgi-bin /etc/apache2/conf-available/clamscanner.conf www-data \
    /lib/systemd/system "Enable it with: a2enconf clamscanner && systemctl reload apache2"
  install -m 0644 "$PKG/debian/copyright" "$dir/usr/share/doc/clamscanner/copyright"
  gzip -9n <"$PKG/debian/changelog" >"$dir/usr/share/doc/clamscanner/changelog.Debian.gz"
  if [ -s "$PKG/debian/lintian-overrides" ]; then
    install -D -m 0644 "$PKG/debian/lintian-overrides" "$dir/usr/share/lintian/overrides/clamscanner"
  fi

  # Depends of the ELF file as dh_shlibdeps computes them (dpkg-shlibdeps wants a debian/control).
  scratch=$(mktemp -d)
  mkdir "$scratch/debian"
  printf 'Source: clamscanner\n\nPackage: clamscanner\nArchitecture: any\n' >"$scratch/debian/control"
  shlibs=$(cd "$scratch" && dpkg-shlibdeps -O "$dir/usr/bin/clamscanner" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
  rm -rf "$scratch"
  [ -n "$shlibs" ] || die "dpkg-shlibdeps found no dependencies"
  size=$(du -k -s --apparent-size "$dir" | cut -f1)

  install -d "$dir/DEBIAN"
  subst "$PKG/debian/control.in" VERSION="$CHANGELOG_VERSION" ARCH="$arch" \
    INSTALLED_SIZE="$size" SHLIBS_DEPENDS="$shlibs" >"$dir/DEBIAN/control"
  for f in postinst prerm postrm; do install -m 0755 "$PKG/debian/$f" "$dir/DEBIAN/$f"; done
  # Every regular file under /etc is a conffile (as dh_installdeb does); md5sums leaves them out.
  (cd "$dir" && find etc -type f | LC_ALL=C sort | sed 's|^|/|') >"$dir/DEBIAN/conffiles"
  (cd "$dir" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -print |
    LC_ALL=C sort | sed 's|^\./||' | xargs md5sum) >"$dir/DEBIAN/md5sums"
  chmod 0644 "$dir/DEBIAN/control" "$dir/DEBIAN/conffiles" "$dir/DEBIAN/md5sums"
  settle "$dir"
  deb=$OUT/clamscanner_${CHANGELOG_VERSION}_${arch}.deb
  rm -f "$deb"
  dpkg-deb --root-owner-group -Zxz --build "$dir" "$deb" >/dev/null
  echo "$deb"
}

build_rpm() {
  local arch dir top rpm
  arch=$(uname -m)
  dir=$OUT/rpm-root
  stage "$dir" /var/www/cgi-bin /etc/httpd/conf.d/clamscanner.conf apache /usr/lib/systemd/system \
    "Active once installed (conf.d); until /etc/clamscanner/htpasswd has an entry nobody gets in."
  install -m 0644 "$PKG/debian/copyright" "$dir/usr/share/doc/clamscanner/copyright"
  settle "$dir"
  top=$OUT/rpmbuild
  rm -rf "$top"
  mkdir -p "$top"/{BUILD,RPMS,SOURCES,SPECS,SRPMS,BUILDROOT}
  rpmbuild --quiet -bb \
    --define "_topdir $top" \
    --define "stage $dir" \
    --define "pkg_version $VERSION" \
    --define "pkg_release $REVISION" \
    --target "$arch" \
    "$PKG/rpm/clamscanner.spec" >"$top/build.log" 2>&1 || { cat "$top/build.log" >&2; die "rpmbuild failed"; }
  rpm=$(find "$top/RPMS" -name "clamscanner-$VERSION-$REVISION*.rpm" | head -n 1)
  [ -n "$rpm" ] || die "rpmbuild made no package"
  mv "$rpm" "$OUT/"
  echo "$OUT/$(basename "$rpm")"
}

mkdir -p "$OUT"
case $KIND in
  deb) build_deb ;;
  rpm) build_rpm ;;
  *) die "unknown package kind $KIND (deb or rpm)" ;;
esac
