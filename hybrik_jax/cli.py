"""The one command-line convention of every entry point and tool.

All of ``train.py``, ``evaluate.py``, ``demo.py``, ``convert_torch_weights.py``,
``python -m hybrik_jax.data.build_tfds``, ``python -m hybrik_jax.data.synthetic``,
``python -m hybrik_jax.demo.body_demo`` and ``bench/*.py`` use absl flags
(as big_vision and Flax's examples do), with these rules:

* Multi-word flags are defined with underscores and accepted with dashes too:
  ``--image-root`` is ``--image_root``, ``--config.data.worker-count=2`` is
  ``--config.data.worker_count=2``. Only the flag name is rewritten, never a
  value.
* ``--config FILE`` + ``--config.a.b=value`` overrides (ml_collections), for
  the commands that take a config.
* ``--help`` prints the command's docstring and its flags, exit status 0.
* ``--cpu_max_isa=AVX2`` (commands that run XLA) caps the instruction set
  XLA:CPU generates code for (see :func:`cap_cpu_isa`).
* A usage error (unknown flag, bad value, missing required flag) prints
  ``error: ...`` and exits with status 2; a bad input file exits with 1 and a
  one-line ``error: ...`` naming it.

Each command defines its flags on its own ``flags.FlagValues`` (not absl's
global ``FLAGS``), so ``main(argv)`` can be called in-process (tests) and
two commands never clash.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from absl import flags

from hybrik_jax import errors


class UsageError(errors.InputError):
  """Bad command line: printed as ``error: ...``, exit status 2."""


_parsing_argv: list[str] = []  # the command line being parsed (see below)


def define_config_file(
  fv: flags.FlagValues, help_string: str, lock_config: bool = True
):
  """``--config FILE`` (a Python file with ``get_config()``) and its
  ``--config.a.b=value`` overrides, on ``fv``; call it inside ``define``."""
  from ml_collections import config_flags

  # ml_collections finds the override flags in the command line it is given.
  return config_flags.DEFINE_config_file(
    "config",
    None,
    help_string,
    flag_values=fv,
    lock_config=lock_config,
    sys_argv=list(_parsing_argv),
  )


def normalize_argv(argv: Sequence[str]) -> list[str]:
  """``--multi-word[=v]`` -> ``--multi_word[=v]`` for every flag token.

  Tokens after a bare ``--`` and tokens that do not start with ``--`` (values,
  positional arguments, negative numbers) are left unchanged.
  """
  out, flags_done = [], False
  for arg in argv:
    if flags_done or not arg.startswith("--") or arg == "--":
      flags_done = flags_done or arg == "--"
      out.append(arg)
      continue
    name, sep, value = arg[2:].partition("=")
    out.append("--" + name.replace("-", "_") + sep + value)
  return out


CPU_ISAS = (
  "SSE4_2",
  "AVX",
  "AVX2",
  "AVX512",
  "AVX512_VNNI",
  "AVX512_BF16",
  "AMX",
)


def cap_cpu_isa(isa: str) -> None:
  """Makes XLA:CPU generate code for no instruction set newer than ``isa``.

  Appends ``--xla_cpu_max_isa=ISA`` to ``XLA_FLAGS``; it must run before JAX
  creates its CPU backend (the entry points call it right after parsing).
  XLA compiles for the host's vector ISA, so the same float32 program can
  round differently on an AVX2 and an AVX-512 machine; capping both at
  ``AVX2`` makes XLA's own generated kernels identical. Library kernels
  that XLA calls at run time (Eigen/oneDNN convolutions and matrix
  products) pick their code path by CPU themselves, so a cap narrows the
  spread between CPU types but does not promise bit-identical results.
  """
  if isa not in CPU_ISAS:
    raise UsageError(f"--cpu_max_isa={isa!r}: choose from {CPU_ISAS}")
  os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + f" --xla_cpu_max_isa={isa}"
  ).strip()


def _check_config_loaded(fv: flags.FlagValues, prog: str) -> None:
  """ml_collections defers a config file's load error to the first use of
  the config; raise it here as a usage error naming the file."""
  try:
    fv["config"].value.keys()
  except Exception as e:  # noqa: BLE001 - whatever loading the file raised
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    why = lines[-1] if lines else type(e).__name__
    raise UsageError(
      f"--config {fv['config'].config_filename}: cannot load it ({why}) "
      f"(see {prog} --help)"
    ) from None


def parse(
  define: Callable[[flags.FlagValues], None],
  argv: Sequence[str] | None,
  prog: str,
  doc: str,
  num_positional: int | tuple[int, int] = 0,
  xla: bool = False,
) -> tuple[flags.FlagValues, list[str]]:
  """Parses ``argv`` (without the program name) against ``define``'s flags.

  Args:
    define: ``define(fv)`` defines the command's flags on ``fv``.
    argv: arguments; None = ``sys.argv[1:]``.
    prog: the command as a user types it (``python demo.py``), for help.
    doc: the command's docstring (printed by ``--help``).
    num_positional: how many positional arguments are expected (an int, or
      an inclusive ``(min, max)``).
    xla: the command runs XLA: adds ``--cpu_max_isa`` (applied here, before
      JAX starts).

  Returns:
    (parsed flag values, positional arguments).

  Raises:
    UsageError: unknown flag, bad value, missing required flag, wrong
      number of positional arguments. ``--help`` exits with status 0.
  """
  global _parsing_argv
  fv = flags.FlagValues()
  args = normalize_argv(sys.argv[1:] if argv is None else list(argv))
  _parsing_argv = [prog] + args
  try:
    define(fv)
    if xla:
      flags.DEFINE_enum(
        "cpu_max_isa",
        None,
        CPU_ISAS,
        "Cap the instruction set XLA:CPU compiles for (e.g. AVX2 on every "
        "x86 machine of a comparison); default: the host's best.",
        flag_values=fv,
      )
  finally:
    _parsing_argv = []
  if any(a in ("--help", "-h", "--helpfull", "-?") for a in args):
    print(
      f"usage: {prog} [flags]\n\n{doc.strip()}\n\nflags:\n"
      f"{fv.get_help(include_special_flags=False)}"
    )
    raise SystemExit(0)
  try:
    positional = fv([prog] + args)[1:]
    fv.validate_all_flags()
  except flags.Error as e:
    missing = [
      n
      for n in fv
      if fv[n].default is None
      and fv[n].value is None
      and f"--{n} must have a value other than None" in str(e)
    ]
    msg = f"missing required flag --{missing[0]}" if missing else str(e)
    raise UsageError(f"{msg} (see {prog} --help)") from None
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    # ml_collections: an override of a field the config does not have, or
    # a value of the wrong type.
    bad = [a for a in args if a.startswith("--config.")]
    why = str(e).strip(chr(34))
    if isinstance(e, (AttributeError, KeyError)):
      why = f"the config has no field {why}"
    raise UsageError(
      f"bad config override {' '.join(bad)}: {why} (see {prog} --help)"
    ) from None
  # A config-file flag (ml_collections), not a plain flag named --config.
  if "config" in fv and hasattr(fv["config"], "config_filename"):
    _check_config_loaded(fv, prog)
  if xla and fv.cpu_max_isa:
    cap_cpu_isa(fv.cpu_max_isa)
  lo, hi = (
    (num_positional, num_positional)
    if isinstance(num_positional, int)
    else num_positional
  )
  if not lo <= len(positional) <= hi:
    want = str(lo) if lo == hi else f"{lo} to {hi}"
    raise UsageError(
      f"expected {want} positional argument(s), got "
      f"{len(positional)}: {positional} (see {prog} --help)"
    )
  return fv, positional


def run(main: Callable[[], int | None], huge_pages: bool = False) -> None:
  """Runs a command's ``main()`` as the program: usage errors exit 2.

  Args:
    main: the command; its return value is the exit status (None = 0).
    huge_pages: re-execute once with glibc huge-page malloc first (see
      :mod:`hybrik_jax.host_memory`); for commands that run XLA.
  """
  if huge_pages:
    from hybrik_jax import host_memory

    host_memory.reexec_with_huge_pages()
  try:
    rc = main()
  except KNOWN_ERRORS as e:
    print(f"error: {one_line(e)}", file=sys.stderr, flush=True)
    raise SystemExit(2) from None
  raise SystemExit(rc or 0)


# A user can fix these (see hybrik_jax.errors); anything else is a bug and
# keeps its traceback. File-system errors name their path.
KNOWN_ERRORS = (
  errors.InputError,
  FileNotFoundError,
  IsADirectoryError,
  NotADirectoryError,
  PermissionError,
)


def one_line(e: BaseException) -> str:
  """``e``'s message on one line (its first line; the path of an OSError
  that does not name it)."""
  text = str(e).strip() or type(e).__name__
  if isinstance(e, OSError) and e.filename and str(e.filename) not in text:
    text = f"{e.filename}: {e.strerror or text}"
  lines = text.splitlines()
  return lines[0] + (" ..." if len(lines) > 1 else "")
