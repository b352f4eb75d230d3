#!/usr/bin/env bash
# Builds the PyTorch reference venv that runs mmhuman3d 0.11.0's HybrIK on CPU
# (for parity checks against the real PyTorch code; issue #14). Separate from
# the project's torch-free .venv. A no-op when the venv already holds what this
# script, reference/requirements.txt and the shims in reference/ describe.
#
#   bash scripts/setup_reference.sh            # -> .refvenv (git-ignored)
#   REFVENV=/some/dir bash scripts/setup_reference.sh
#   PYTHON=python3.11 ...                       # interpreter for a new venv
#
# Packages come from the configured package index only (pip). torch is the
# CPU build, torch==2.13.0+cpu: where the index lacks it (plain PyPI has no
# +cpu wheels), point pip at one that has it, e.g.
#   PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
# Use the venv through reference/refenv.py, which stubs what cannot be
# installed:
#   .refvenv/bin/python -c "import sys; sys.path.insert(0, 'reference');
#     import refenv, mmhuman3d.models.architectures.hybrik"
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
V=${REFVENV:-.refvenv}
VPY=$V/bin/python
STAMP=$V/.hybrik-jax-reference-installed
# Everything that decides the venv's contents or whether the import works.
HASHED=(scripts/setup_reference.sh reference/requirements.txt
  reference/refenv.py reference/p3d_rotations.py)
WANT=$(cat "${HASHED[@]}" | sha256sum | cut -d' ' -f1)
# Import names of everything installed below (cheap presence check).
MODULES=(torch mmcv mmhuman3d smplx einops h5py trimesh skimage scipy cv2 tqdm)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VPY" ] \
  && "$VPY" -c "import importlib.util as u, sys
sys.exit(not all(u.find_spec(m) for m in sys.argv[1:]))" "${MODULES[@]}" 2>/dev/null; then
  exit 0
fi

# pip -q, minus the warnings this machine's pip config prints for package
# folders that its local indexes lack.
pip_install() {
  "$VPY" -m pip install -q "$@" 2>&1 \
    | { grep -v "^WARNING: Location '.*' is ignored" || true; }
}

start=$SECONDS
rm -f "$STAMP"
[ -x "$VPY" ] || "$PY" -m venv "$V"
pip_install --upgrade pip
# torch (CPU build) and the packages the HybrIK import path needs, with their
# own dependencies.
pip_install -r reference/requirements.txt
# mmcv 1.7.2 is an sdist whose setup.py fails with setuptools >= 70: build it
# with an old setuptools in the venv itself (no build isolation), then restore
# the setuptools that torch requires (>= 77.0.3; the version pinned in
# reference/requirements.txt). --no-deps everywhere here:
# mmcv's and mmhuman3d's declared dependencies are not wanted (see
# reference/requirements.txt), and setuptools is pinned on purpose.
pip_install --no-deps "setuptools==69.5.1" "wheel==0.45.1"
pip_install --no-deps --no-build-isolation "mmcv==1.7.2"
pip_install --no-deps "setuptools==84.2.1"
pip_install --no-deps "mmhuman3d==0.11.0"

# Prove it: import HybrIK through the stubs (torchvision, pytorch3d, mmcv
# version) and check the rotation shim is the one in use.
"$VPY" -W ignore - <<'EOF'
import sys
sys.path.insert(0, "reference")
import refenv  # noqa: E402
import mmhuman3d.models.architectures.hybrik  # noqa: E402,F401
import mmhuman3d.utils.transforms as t  # noqa: E402
import p3d_rotations  # noqa: E402
assert t.matrix_to_quaternion is p3d_rotations.matrix_to_quaternion
print(f"reference venv ready: mmcv {refenv.MMCV_VERSION} (reported to "
      f"mmhuman3d as {refenv.MMCV_SPOOFED_VERSION}), pytorch3d rotations "
      "from reference/p3d_rotations.py")
EOF
echo "$WANT" > "$STAMP"
echo "setup_reference: built $V in $((SECONDS - start)) s"
