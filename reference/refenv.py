"""Makes mmhuman3d 0.11.0's HybrIK importable in the reference venv.

Runs only inside the PyTorch reference venv that ``scripts/setup_reference.sh``
builds (``.refvenv``); never imported by ``hybrik_jax``. Importing this module
installs, once per process:

* ``torchvision``: a bare stub, unless a real one is installed. mmcv 1.7.2's
  ``runner/checkpoint.py`` imports it at module level only to list model-zoo
  URLs (``torchvision://`` checkpoints), which HybrIK never loads; no
  torchvision build installs beside the current CPU torch.
* ``pytorch3d``: unless a real one is installed, every ``pytorch3d.*``
  module is a placeholder whose attributes are placeholder classes (they
  can be subclassed and used in annotations, constructing one raises). Those
  are the renderer/camera/mesh imports of mmhuman3d's module registries,
  unused by HybrIK. ``pytorch3d.transforms`` additionally holds the nine
  rotation conversions of :mod:`p3d_rotations` (bit-identical to pytorch3d
  v0.7.4), which ``mmhuman3d.utils.transforms`` wraps and HybrIK uses.
* the mmcv version check: mmhuman3d's ``__init__`` asserts
  ``1.3.17 <= mmcv <= 1.6.1``, but the installable mmcv is 1.7.2 (the "lite"
  build, no compiled ops). ``mmcv.__version__`` reads ``1.6.1`` while
  ``mmhuman3d`` is first imported, then is restored (:data:`MMCV_VERSION`).

Use from the repository root (``import reference.refenv``) or with
``reference/`` on ``sys.path`` (``import refenv``), before importing
mmhuman3d, e.g. ``import refenv, mmhuman3d.models.architectures.hybrik``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types

try:  # imported as reference.refenv
  from . import p3d_rotations
except ImportError:  # imported as refenv, with reference/ on sys.path
  import p3d_rotations

MMCV_VERSION: str | None = None  # the installed mmcv's real version
MMCV_SPOOFED_VERSION = "1.6.1"  # newest that mmhuman3d 0.11.0 accepts
TORCHVISION_STUBBED = False
PYTORCH3D_STUBBED = False

_P3D = "pytorch3d"
_P3D_TRANSFORMS = "pytorch3d.transforms"


class Placeholder:
  """Stands in for a pytorch3d class; subclassable, not constructible."""

  def __init__(self, *args, **kwargs):
    raise RuntimeError(
      f"{type(self).__module__}.{type(self).__qualname__} is a placeholder "
      "of the reference venv (pytorch3d is not installed; only its rotation "
      "conversions are provided, by reference/p3d_rotations.py)"
    )

  def __class_getitem__(cls, item):  # e.g. Placeholder[...] in annotations
    return cls


class _PlaceholderModule(types.ModuleType):
  """A module whose every public attribute is a placeholder class."""

  def __getattr__(self, name: str):
    if name.startswith("__"):
      raise AttributeError(name)
    cls = type(name, (Placeholder,), {"__module__": self.__name__})
    setattr(self, name, cls)  # one class per name, for isinstance checks
    return cls


class _PlaceholderFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  """Imports ``pytorch3d`` and any submodule as placeholder packages."""

  def find_spec(self, fullname, path=None, target=None):
    if fullname == _P3D or fullname.startswith(_P3D + "."):
      return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
    return None

  def create_module(self, spec):
    module = _PlaceholderModule(spec.name)
    module.__path__ = []
    return module

  def exec_module(self, module):
    if module.__name__ == _P3D_TRANSFORMS:
      for name in p3d_rotations.__all__:
        setattr(module, name, getattr(p3d_rotations, name))
      module.ROTATIONS_FROM = p3d_rotations.__name__


def _stub_torchvision() -> bool:
  if "torchvision" in sys.modules or importlib.util.find_spec("torchvision"):
    return False
  tv = types.ModuleType("torchvision")
  tv.__version__ = "0.0.0+refenv.stub"
  tv.__path__ = []
  models = types.ModuleType("torchvision.models")
  models.__path__ = []  # no model modules, so no model-zoo URLs
  tv.models = models
  sys.modules["torchvision"] = tv
  sys.modules["torchvision.models"] = models
  return True


def _stub_pytorch3d() -> bool:
  if any(type(f).__name__ == "_PlaceholderFinder" for f in sys.meta_path):
    return True
  if _P3D in sys.modules or importlib.util.find_spec(_P3D):
    return False
  sys.meta_path.insert(0, _PlaceholderFinder())
  return True


def _import_mmhuman3d_with_spoofed_mmcv() -> str:
  import mmcv

  real = mmcv.__version__
  if "mmhuman3d" not in sys.modules:
    mmcv.__version__ = MMCV_SPOOFED_VERSION
    try:
      import mmhuman3d  # noqa: F401  (runs the version assertion)
    finally:
      mmcv.__version__ = real
  return real


def install() -> None:
  """Installs the stubs (idempotent; done on import of this module)."""
  global MMCV_VERSION, TORCHVISION_STUBBED, PYTORCH3D_STUBBED
  TORCHVISION_STUBBED = _stub_torchvision() or TORCHVISION_STUBBED
  PYTORCH3D_STUBBED = _stub_pytorch3d()
  MMCV_VERSION = _import_mmhuman3d_with_spoofed_mmcv()


install()
