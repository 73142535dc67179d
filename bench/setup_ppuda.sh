#!/usr/bin/env bash
# Sets up the ppuda side-by-side (bench/ppuda_timing.py) on Debian 12: Debian's PyTorch and
# the Python packages ppuda imports, einops from PyPI (Debian 12 has no package) into
# OUT/pylib, and ppuda's source from a git copy of facebookresearch/ppuda into OUT/ppuda.
# ppuda is not part of HyperNAS and is not downloaded here: bring a copy (e.g. the search
# tool's fetch, which gives a bare repository) and pass its git folder.
#
#   bash bench/setup_ppuda.sh /work/.mirror/facebookresearch+ppuda/repo /tmp/ppuda
#   PYTHONPATH=/tmp/ppuda/pylib /usr/bin/python3 bench/ppuda_timing.py --ppuda /tmp/ppuda/src
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 PPUDA_GIT_DIR OUT_DIR" >&2
  exit 2
fi
git_dir="$1"
out="$2"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  python3-torch python3-torchvision python3-matplotlib python3-tqdm python3-networkx \
  python3-h5py python3-pip
mkdir -p "$out/src" "$out/pylib"
/usr/bin/python3 -m pip install --quiet --target "$out/pylib" einops
git --git-dir "$git_dir" archive HEAD ppuda | tar -x -C "$out/src"
echo "ppuda is in $out/src; run: PYTHONPATH=$out/pylib /usr/bin/python3 bench/ppuda_timing.py --ppuda $out/src"
