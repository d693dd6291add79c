# shellcheck shell=bash
# Writes docker-archive tarballs (the `docker save` layout) with nothing but
# tar and sha256sum, because there is no Docker engine or registry here;
# `ctr -n k8s.io images import` accepts them. Sourced, never run.

# Deterministic tar flags: identical inputs give identical layer digests, so
# containerd dedups the shared base layer across imports.
TAR_DET=(--sort=name --mtime=@0 --numeric-owner --format=gnu)

# make_layer DIR OUT.tar [--root-owner]: tars DIR's contents as one layer and
# stores its sha256 in OUT.tar.sha256 so later archives needn't rehash it.
make_layer() {
  local dir=$1 out=$2 own=()
  [ "${3:-}" = --root-owner ] && own=(--owner=0 --group=0)
  tar -C "$dir" "${TAR_DET[@]}" "${own[@]}" -cf "$out.tmp" .
  sha256sum "$out.tmp" | cut -d' ' -f1 > "$out.sha256"
  mv "$out.tmp" "$out"
}

layer_sum() {
  if [ -f "$1.sha256" ] && [ ! "$1" -nt "$1.sha256" ]; then
    cat "$1.sha256"
  else
    sha256sum "$1" | cut -d' ' -f1 | tee "$1.sha256"
  fi
}

# json_array A B C prints ["A","B","C"] (arguments must not contain quotes).
json_array() {
  local out="" a
  for a in "$@"; do out+="${out:+,}\"$a\""; done
  printf '[%s]' "$out"
}

# docker_archive OUT TAG ENTRYPOINT_JSON CMD_JSON LAYER.tar...
# Layers are listed base first.
docker_archive() {
  local out=$1 tag=$2 ep=$3 cmd=$4; shift 4
  local tmp; tmp=$(mktemp -d "$(dirname "$out")/.archive.XXXXXX")
  local diffids=() layers=() l sum
  for l in "$@"; do
    sum=$(layer_sum "$l")
    mkdir -p "$tmp/$sum"
    # Hard links avoid copying a 100+ MB rootfs layer just to tar it again.
    ln "$l" "$tmp/$sum/layer.tar" 2>/dev/null || cp "$l" "$tmp/$sum/layer.tar"
    diffids+=("sha256:$sum"); layers+=("$sum/layer.tar")
  done
  local config csum
  config=$(printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":%s,"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":%s},"history":[{"created_by":"ec2csi e2e/cluster image-lib.sh"}]}' \
    "$ep" "$cmd" "$(json_array "${diffids[@]}")")
  csum=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
  printf '%s' "$config" > "$tmp/$csum.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":%s}]' "$csum" "$tag" "$(json_array "${layers[@]}")" > "$tmp/manifest.json"
  # Explicit member names (no "./" prefix): the docker-archive readers look
  # entries up by the exact names written in manifest.json.
  tar -C "$tmp" --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$out.tmp" manifest.json "$csum.json" "${layers[@]}"
  mv "$out.tmp" "$out"
  rm -rf "$tmp"
}
