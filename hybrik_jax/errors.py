"""The errors a user can fix: a bad file, key, value or flag.

Every error class of this package that describes bad *input* (a corrupt or
foreign file, a missing key, an invalid config value, a folder that must not
be overwritten) derives from :class:`InputError` as well as from the builtin
it always was (``ValueError``, ``FileNotFoundError``, ...), so callers that
catch the builtin keep working. The entry points (:func:`hybrik_jax.cli.run`)
print an ``InputError`` as one line, ``error: <message>``, and exit with
status 2; anything else is a bug and keeps its traceback.

The message names what is at fault: the file, the key or config value, the
sample index or shape, and what was expected.
"""

from __future__ import annotations


class InputError(Exception):
  """Bad input the user can fix (printed as one ``error:`` line, exit 2)."""


class ConfigError(InputError, ValueError):
  """An invalid config value (names the ``config.…`` key and the choices)."""


class MissingInputError(InputError, FileNotFoundError):
  """A file or folder the command needs does not exist (names the path and
  where the path came from)."""


class RunMismatchError(InputError, ValueError):
  """A command contradicts the run or checkpoint it is given (names each
  differing value, both sides)."""


class WorkdirLockedError(InputError, RuntimeError):
  """Another live process is training in the same workdir."""
