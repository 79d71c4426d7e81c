# shellcheck shell=bash
# Shared by the set-up scripts: run as root (directly or through sudo) and install
# Debian packages only when they are missing, so every script stays idempotent.
# Sourced, not run.

as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    echo "setup: need root to run: $*" >&2
    return 1
  fi
}

# apt_install PKG…: installs the packages not installed yet; refreshes the package
# lists once per run, and only when something is missing.
apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "${KAIROS_APT_UPDATED:-}" ]; then
    as_root apt-get update -qq || return 1
    export KAIROS_APT_UPDATED=1
  fi
  echo "setup: apt-get install ${missing[*]}" >&2
  # Through env, so that sudo (which resets the environment) passes them on.
  as_root env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
