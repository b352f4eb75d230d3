"""Command line: build a HybrIK dataset into pre-cropped ArrayRecord files.

  python -m hybrik_jax.data.build_tfds --config=synthetic \
      --manual_dir=/path/to/data --data_dir=/path/to/tfds

See `tfds_builder` for configs and the record layout.
"""

from collections.abc import Sequence

from absl import flags

from hybrik_jax import cli
from hybrik_jax.data import tfds_builder


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_enum(
    "config",
    None,
    [c.name for c in tfds_builder.BUILDER_CONFIGS],
    "Dataset to build.",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "manual_dir",
    None,
    "mmhuman3d's data/ folder (or the synthetic dataset's).",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "data_dir", None, "tfds data dir to write into.", flag_values=fv
  )
  flags.DEFINE_enum(
    "image_format",
    "jpeg",
    ["jpeg", "png"],
    "Encoding of the crops.",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "jpeg_quality", 95, "JPEG quality of the crops.", flag_values=fv
  )
  flags.DEFINE_integer(
    "num_threads", 8, "Decode/encode threads.", flag_values=fv
  )
  flags.mark_flags_as_required(
    ["config", "manual_dir", "data_dir"], flag_values=fv
  )


def main(argv: Sequence[str] | None = None) -> int:
  args, _ = cli.parse(
    define_flags, argv, "python -m hybrik_jax.data.build_tfds", __doc__
  )
  builder = tfds_builder.build(
    args.config,
    args.manual_dir,
    args.data_dir,
    image_format=args.image_format,
    jpeg_quality=args.jpeg_quality,
    num_threads=args.num_threads,
  )
  print(
    f"built {builder.info.full_name} into {builder.data_dir}: "
    + ", ".join(f"{k}={v.num_examples}" for k, v in builder.info.splits.items())
  )
  return 0


if __name__ == "__main__":
  cli.run(main)
