"""The one command-line convention (hybrik_jax/cli.py) of every entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from absl import flags

from hybrik_jax import cli

ROOT = Path(__file__).resolve().parents[1]

# Every command a user runs: (argv prefix, a flag it must know).
COMMANDS = [
  ([sys.executable, "train.py"], "--workdir"),
  ([sys.executable, "evaluate.py"], "--image_root"),
  ([sys.executable, "demo.py"], "--bbox_file"),
  ([sys.executable, "convert_torch_weights.py"], "--torchvision"),
  ([sys.executable, "-m", "hybrik_jax.data.build_tfds"], "--manual_dir"),
  ([sys.executable, "-m", "hybrik_jax.data.synthetic"], "--num_test"),
  ([sys.executable, "-m", "hybrik_jax.demo.body_demo"], "--num"),
  ([sys.executable, "bench/run_all.py"], "--repeats"),
  ([sys.executable, "bench/bench_body.py"], "--batches"),
  ([sys.executable, "bench/bench_input.py"], "--workers"),
  ([sys.executable, "bench/profile_predict.py"], "--batch"),
  ([sys.executable, "bench/profile_ops.py"], "--rows"),
]


def _run(argv, **env_overrides):
  """Runs ``argv`` in the repository root; XLA_FLAGS of pytest's env dropped."""
  env = dict(os.environ, HYBRIK_JAX_HUGEPAGES="0", PYTHONPATH=str(ROOT))
  env.pop("XLA_FLAGS", None)
  env.update(env_overrides)
  return subprocess.run(
    argv, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300
  )


def test_normalize_argv_rewrites_flag_names_only():
  assert cli.normalize_argv(
    [
      "--image-root",
      "a-b",
      "--config.data.worker-count=2",
      "-5,3",
      "--bbox=-1,-2,3,4",
      "--",
      "--not-a-flag",
    ]
  ) == [
    "--image_root",
    "a-b",
    "--config.data.worker_count=2",
    "-5,3",
    "--bbox=-1,-2,3,4",
    "--",
    "--not-a-flag",
  ]


def _define(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("image_root", None, "a folder", flag_values=fv)
  flags.DEFINE_bool("no_progress", False, "hide bars", flag_values=fv)
  flags.DEFINE_integer("batch_size", 8, "batch", flag_values=fv)


@pytest.mark.parametrize(
  "argv",
  [
    ["--image-root", "/x", "--no-progress", "--batch-size=3"],
    ["--image_root=/x", "--no_progress", "--batch_size", "3"],
  ],
)
def test_both_spellings_parse_the_same(argv):
  fv, rest = cli.parse(_define, argv, "prog", "doc")
  assert (fv.image_root, fv.no_progress, fv.batch_size, rest) == (
    "/x",
    True,
    3,
    [],
  )


@pytest.mark.parametrize(
  "argv, message",
  [
    (["--bogus=1"], "Unknown command line flag 'bogus'"),
    (["--batch-size=x"], "--batch_size=x"),
    (["extra"], "expected 0 positional argument(s)"),
  ],
)
def test_usage_errors(argv, message):
  with pytest.raises(
    cli.UsageError, match=message.replace("(", r"\(").replace(")", r"\)")
  ):
    cli.parse(_define, argv, "prog", "doc")


@pytest.mark.slow
@pytest.mark.parametrize(
  "command, flag", COMMANDS, ids=[" ".join(c[1:]) for c, _ in COMMANDS]
)
def test_every_command_has_help_and_usage_errors(command, flag):
  proc = _run(command + ["--help"])
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert flag in proc.stdout
  proc = _run(command + ["--no-such-flag=1"])
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert (
    proc.stderr.strip()
    .splitlines()[-1]
    .startswith("error: Unknown command line flag 'no_such_flag'")
  )
  assert "Traceback" not in proc.stderr


def test_cap_cpu_isa_reaches_xla(tmp_path):
  # The flag is applied before JAX starts; XLA logs that it honours it.
  script = tmp_path / "isa.py"
  script.write_text(
    "from absl import flags\n"
    "from hybrik_jax import cli\n"
    "cli.parse(lambda fv: None, ['--cpu-max-isa=AVX'], 'p', 'd', xla=True)\n"
    "import jax, jax.numpy as jnp\n"
    "print(float(jax.jit(lambda x: x * 2 + 1)(jnp.ones(4)).sum()))\n"
  )
  proc = _run(
    [sys.executable, str(script)],
    TF_CPP_MIN_LOG_LEVEL="0",
    TF_CPP_VMODULE="cpu_compiler=1",
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip() == "12.0"
  assert (
    "`xla_cpu_max_isa` is set. Will not use features newer than: AVX"
    in proc.stderr
  )


def test_cap_cpu_isa_rejects_an_unknown_isa():
  with pytest.raises(cli.UsageError, match="choose from"):
    cli.cap_cpu_isa("AVX3000")
