"""Allow-listed unpickling.

Pickle files (SMPL body models, PyTorch checkpoints) can name arbitrary Python
callables and run them while loading. Every loader in hybrik-jax goes through
:class:`RestrictedUnpickler`, which resolves a global only if its
``(module, name)`` pair is on an explicit allow-list and refuses everything
else *before* anything is called, with an error naming the file and the global.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, Callable, Mapping


class UnsafePickleError(pickle.UnpicklingError):
  """A pickle asked for a global that is not on the allow-list."""


class RestrictedUnpickler(pickle.Unpickler):
  """An Unpickler that resolves only allow-listed globals.

  Args:
    file: binary file object.
    allowed: mapping ``(module, name) -> object`` returned for that global.
      The object need not be the real one: loaders substitute stand-ins (e.g.
      a chumpy ``Ch`` replacement) so that optional packages are never imported.
    source: a label (usually the path) used in error messages.
    persistent_load: optional handler for persistent ids (torch storages).
    **kwargs: passed to :class:`pickle.Unpickler` (e.g. ``encoding='latin1'``).
  """

  def __init__(self, file, allowed: Mapping[tuple[str, str], Any],
               source: str = "<pickle>",
               persistent_load: Callable[[Any], Any] | None = None,
               **kwargs):
    super().__init__(file, **kwargs)
    self._allowed = dict(allowed)
    self._source = source
    self._persistent_load_fn = persistent_load

  def find_class(self, module: str, name: str) -> Any:
    try:
      return self._allowed[(module, name)]
    except KeyError:
      raise UnsafePickleError(
          f"{self._source}: refusing to load global '{module}.{name}': it is "
          "not on the allow-list of this loader (the file may be corrupt or "
          "malicious; nothing from it was executed)") from None

  def persistent_load(self, pid: Any) -> Any:
    if self._persistent_load_fn is None:
      raise UnsafePickleError(
          f"{self._source}: unexpected persistent id {pid!r} in pickle")
    return self._persistent_load_fn(pid)


def restricted_loads(data: bytes, allowed: Mapping[tuple[str, str], Any],
                     source: str = "<pickle>", **kwargs) -> Any:
  """Unpickle ``data`` resolving only the ``allowed`` globals."""
  return RestrictedUnpickler(io.BytesIO(data), allowed, source=source,
                             **kwargs).load()
