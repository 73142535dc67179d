#!/usr/bin/env bash
# Installs everything HyperNAS needs on a fresh Debian 12 machine (idempotent: packages
# already present are not touched), then unpacks CIFAR-10 into the data cache when the
# shared copy is there. Run as root or with sudo available.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git clang-format
  libtorch-dev libopenblas0-pthread
  libboost-dev libboost-filesystem-dev libboost-graph-dev
  liblua5.4-dev libcxxopts-dev libgtest-dev libsqlite3-dev nlohmann-json3-dev
  zlib1g-dev libjpeg62-turbo-dev libpng-dev
  dataset-fashion-mnist gnuplot-nox
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all ${#PACKAGES[@]} packages present"
fi

# CIFAR-10 (JPEG image folder) into the cache the engine reads by default.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${HYPERNAS_DATA_CACHE:-$HOME/.cache/hypernas}"
tarball="${HYPERNAS_CIFAR10_TARBALL:-$here/../shared/data/cifar10-jpeg.tar.gz}"
if [ -f "$tarball" ] && [ ! -f "$cache/cifar10/.unpacked" ]; then
  echo "setup: unpacking $tarball into $cache/cifar10"
  rm -rf "$cache/cifar10.partial"
  mkdir -p "$cache/cifar10.partial"
  tar -xzf "$tarball" -C "$cache/cifar10.partial"
  # The archive may hold one top folder; the engine wants train/ and test/ directly inside.
  inner="$cache/cifar10.partial"
  if [ ! -d "$inner/train" ]; then inner="$(dirname "$(find "$cache/cifar10.partial" -maxdepth 3 -type d -name train | head -n1)")"; fi
  rm -rf "$cache/cifar10"
  mv "$inner" "$cache/cifar10"
  rm -rf "$cache/cifar10.partial"
  touch "$cache/cifar10/.unpacked"
fi
