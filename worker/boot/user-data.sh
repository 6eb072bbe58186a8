#!/bin/bash
# fleetlab instance boot (the EC2 user-data), after the article's "Virtual Linux, Amazon Style":
# fetch the current code bundle from S3, verify it, install it as a release, set the previous
# code aside as code.previous, link `code` to the release and run the release's start-up script.
# Code changes by uploading a bundle, never by rebuilding the image; running this script again
# on a live instance re-deploys. lab/ec2/userdata.py puts the configuration in front of this text as
# `export NAME=value` lines. No `set -x` anywhere: the console log must never show a secret.
set -euo pipefail
umask 022

log() { printf '%s boot: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$*"; }
die() {
  log "FAILED: $*"
  exit 1
}

: "${FLEETLAB_BUCKET:?FLEETLAB_BUCKET is not set}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export FLEETLAB_ROOT="${FLEETLAB_ROOT:-/opt/fleetlab}"
python="${FLEETLAB_PYTHON:-python3}"
imds="http://169.254.169.254/latest"
# SigV4 for S3 needs the payload hash header; curl 7.88 does not add it, so name the empty body's.
empty_sha256="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# The release installs from its own wheelhouse alone and runs only its own code: nothing from
# the host's pip settings or Python paths may leak in (in the lab the "machine" is shared).
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_FIND_LINKS
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

imds_get() { # GET one instance-metadata path with an IMDSv2 session token (real EC2 only)
  local token
  token=$(curl -fsS --max-time 2 --retry 2 -X PUT \
    -H "X-aws-ec2-metadata-token-ttl-seconds: 300" "$imds/api/token") || return 1
  curl -fsS --max-time 2 --retry 2 -H "X-aws-ec2-metadata-token: $token" "$imds/$1"
}

if [[ -z ${FLEETLAB_INSTANCE_ID:-} ]]; then
  FLEETLAB_INSTANCE_ID=$(imds_get meta-data/instance-id) ||
    die "FLEETLAB_INSTANCE_ID is not set and there is no instance metadata"
fi
export FLEETLAB_INSTANCE_ID

# In the lab the credentials come in the environment. On EC2 they come from the instance role
# through IMDS -- that path cannot be tested here (no metadata service). They stay in unexported
# variables: the worker's boto3 fetches (and refreshes) its own from IMDS.
key_id="${AWS_ACCESS_KEY_ID:-}" secret="${AWS_SECRET_ACCESS_KEY:-}" token="${AWS_SESSION_TOKEN:-}"
if [[ -z $key_id ]]; then
  role=$(imds_get meta-data/iam/security-credentials/) || die "no AWS credentials and no role"
  creds=$(imds_get "meta-data/iam/security-credentials/${role%%$'\n'*}") ||
    die "cannot read the instance role's credentials"
  { IFS= read -r key_id && IFS= read -r secret && IFS= read -r token; } < <(
    "$python" -c 'import json, sys
d = json.load(sys.stdin)
print(d["AccessKeyId"], d["SecretAccessKey"], d["Token"], sep="\n")' <<<"$creds"
  ) || die "the instance role's credentials do not parse"
  unset creds
fi

s3_url() {
  if [[ -n ${FLEETLAB_ENDPOINT_URL:-} ]]; then
    printf '%s/%s/%s' "${FLEETLAB_ENDPOINT_URL%/}" "$FLEETLAB_BUCKET" "$1"
  else
    printf 'https://%s.s3.%s.amazonaws.com/%s' "$FLEETLAB_BUCKET" "$AWS_REGION" "$1"
  fi
}

quoted() { # a value inside a curl config string: backslash and double quote escaped
  local value=${1//\\/\\\\}
  printf '%s' "${value//\"/\\\"}"
}

s3_get() { # s3_get KEY FILE: a SigV4-signed GET
  # The keys go to curl as a config on stdin (`-K -`), the same as --user, but never on a
  # command line that any local user can read in /proc.
  {
    printf 'user = "%s:%s"\n' "$(quoted "$key_id")" "$(quoted "$secret")"
    if [[ -n $token ]]; then
      printf 'header = "x-amz-security-token: %s"\n' "$(quoted "$token")"
    fi
  } | curl -fsS --retry 5 --retry-connrefused --retry-delay 1 --connect-timeout 5 \
    --max-time 300 --aws-sigv4 "aws:amz:${AWS_REGION}:s3" \
    -H "x-amz-content-sha256: $empty_sha256" -K - -o "$2" "$(s3_url "$1")"
}

root=$FLEETLAB_ROOT
# The venv depends on nothing but the wheelhouse and the interpreter, so it is installed once per
# host into the venv cache, under a key of both, and every release with the same wheels links to
# it. On EC2 the cache is the instance's own ($root/venvs: a rollback or a re-deploy of the same
# wheels installs nothing); the lab's hypervisor points all bodies of one machine at one cache.
# Lab-side pruning (lab/ec2/disks.py) takes a cache entry's lock before it deletes an entry that no
# release links to, so the link is made while the lock is held.
venvs="${FLEETLAB_VENV_CACHE:-$root/venvs}"
install_venv() { # install_venv RELEASE: link RELEASE/venv to the cached venv of its wheels
  local release=$1 key venv
  key=$("$python" -c 'import hashlib, json, os, sys
files = json.load(open(sys.argv[1]))["files"]
wheels = sorted((p, d) for p, d in files.items() if p.startswith("wheelhouse/"))
interpreter = [sys.version, os.path.realpath(sys.executable)]
print(hashlib.sha256(json.dumps([wheels, interpreter]).encode()).hexdigest())' \
    "$release/MANIFEST.json") || die "cannot compute the venv key of $release"
  venv="$venvs/$key"
  mkdir -p "$venvs"
  exec 8>"$venv.lock" # its mtime says when the entry was last used
  flock -w 300 8 || die "another boot still holds $venv.lock"
  if [[ -f $venv/.installed ]]; then
    log "the venv of these wheels is in the cache ($key): no install"
  else
    rm -rf "$venv"
    # The venv is made at its final path: a venv's scripts carry absolute paths.
    log "creating the release's venv with $python"
    "$python" -m venv "$venv" || die "cannot create a venv with $python"
    log "installing fleetlab from the bundle's wheelhouse (no index)"
    if ! "$venv/bin/python" -m pip install --no-index --find-links "$release/wheelhouse" \
      fleetlab >"$venv/install.log" 2>&1; then
      tail -n 20 "$venv/install.log"
      die "pip install of $version failed"
    fi
    chmod -R go-w "$venv"
    touch "$venv/.installed" # last: a venv half made when the boot died is made again
  fi
  ln -sfn "$venv" "$release/venv"
  exec 8>&-
  # Installed, the wheels are in the venv: the release need not keep a second copy of them.
  rm -rf "$release/wheelhouse"
}

downloads="$root/downloads"
log "booting $FLEETLAB_INSTANCE_ID into $root (bucket $FLEETLAB_BUCKET)"
mkdir -p "$root/releases" "$downloads" "$root/work"
# One boot at a time per root: a re-deploy started while a boot is installing waits for it.
exec 9>"$root/.boot.lock"
flock -w 300 9 || die "another boot still holds $root/.boot.lock"

# A stock Debian image has python3 and curl but neither venv nor sox: FLEETLAB_BOOT_PACKAGES
# (set by `lab provision`) names what to install from the image's own apt sources, once.
missing=()
for package in ${FLEETLAB_BOOT_PACKAGES:-}; do
  [[ $package =~ ^[a-z0-9][a-z0-9.+-]*$ ]] || die "bad package name in FLEETLAB_BOOT_PACKAGES"
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
    missing+=("$package")
done
if ((${#missing[@]})); then
  command -v apt-get >/dev/null || die "FLEETLAB_BOOT_PACKAGES needs apt-get (a Debian image)"
  log "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get -q update && apt-get -q install -y --no-install-recommends "${missing[@]}"; } \
    >"$root/apt.log" 2>&1 || die "apt-get could not install ${missing[*]}; see $root/apt.log"
fi

log "reading s3://$FLEETLAB_BUCKET/bundles/current.json"
s3_get bundles/current.json "$downloads/current.json" ||
  die "cannot download bundles/current.json from $FLEETLAB_BUCKET"
fields=$("$python" -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(d["version"], d["key"], d["sha256"])' "$downloads/current.json") ||
  die "bundles/current.json is not a bundle pointer"
read -r version key sha256 <<<"$fields"
# These become paths and URLs: refuse anything but the shapes lab/deploy/bundle.py writes.
[[ $version =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "bad version in the pointer"
[[ $key =~ ^bundles/[A-Za-z0-9][A-Za-z0-9._-]*\.tar\.gz$ ]] || die "bad key in the pointer"
[[ $sha256 =~ ^[0-9a-f]{64}$ ]] || die "bad sha256 in the pointer"
log "current bundle is $version"

release="$root/releases/$version"
if [[ -f $release/.installed && $(<"$release/.installed") == "$sha256" &&
  -f $release/venv/.installed ]]; then
  log "release $version is already installed: no download, no install"
else
  rm -rf "$release" "$release.partial"
  archive="$downloads/$version.tar.gz"
  log "downloading s3://$FLEETLAB_BUCKET/$key"
  s3_get "$key" "$archive" || die "cannot download $key"
  if ! printf '%s  %s\n' "$sha256" "$archive" | sha256sum --check --status; then
    got=$(sha256sum <"$archive")
    rm -f "$archive"
    die "checksum mismatch for $key: expected sha256 $sha256, got ${got%% *}; not installing it"
  fi
  log "sha256 verified; extracting into releases/$version"
  mkdir -p "$release.partial"
  tar -xzf "$archive" -C "$release.partial" --no-same-owner || die "cannot extract $key"
  rm -f "$archive"
  # The archive's own manifest: every file it names, with its sha256, in sha256sum's format.
  (cd "$release.partial" && "$python" -c 'import json
for path, digest in sorted(json.load(open("MANIFEST.json"))["files"].items()):
    print(f"{digest}  {path}")' | sha256sum --check --quiet --strict) ||
    die "the files of $version do not match its MANIFEST.json"
  [[ $(<"$release.partial/VERSION") == "$version" ]] || die "VERSION does not say $version"
  # The wheelhouse holds compiled wheels (lxml) for one Python: the interpreter must match it.
  want=$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["python"])' \
    "$release.partial/MANIFEST.json") || die "MANIFEST.json does not name its Python"
  "$python" -c 'import sys; sys.exit("%d.%d" % sys.version_info[:2] != sys.argv[1])' "$want" ||
    die "$python is not Python $want, which the bundle's wheelhouse is built for"
  mv -T "$release.partial" "$release"
  install_venv "$release"
  # Written last: a release that was half installed when the boot died is redone next time.
  printf '%s\n' "$sha256" >"$release/.installed"
  log "release $version installed"
fi

chmod 0755 "$release/start.sh"
chmod -R go-w "$release"
if [[ -e $root/code || -L $root/code ]]; then
  rm -rf "$root/code.previous"
  mv -T "$root/code" "$root/code.previous"
  log "renamed code to code.previous (was $(readlink "$root/code.previous" || echo 'a folder'))"
fi
# Relative, so the link holds wherever the disk is mounted (a Docker body sees /instance/root).
ln -sfn "releases/$version" "$root/code"
log "code -> releases/$version; running its start.sh"
exec 9>&-
exec "$root/code/start.sh"
