"""Command line: build a HybrIK dataset into pre-cropped ArrayRecord files.

  python -m hybrik_jax.data.build_tfds --config=synthetic \
      --manual_dir=/path/to/data --data_dir=/path/to/tfds

See `tfds_builder` for configs and the record layout.
"""

import argparse
from typing import Sequence

from hybrik_jax.data import tfds_builder


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(
      description=__doc__.split('\n', maxsplit=1)[0])
  parser.add_argument('--config', required=True,
                      choices=[c.name for c in tfds_builder.BUILDER_CONFIGS])
  parser.add_argument('--manual_dir', required=True)
  parser.add_argument('--data_dir', required=True)
  parser.add_argument('--image_format', default='jpeg',
                      choices=('jpeg', 'png'))
  parser.add_argument('--jpeg_quality', type=int, default=95)
  parser.add_argument('--num_threads', type=int, default=8)
  args = parser.parse_args(argv)
  builder = tfds_builder.build(args.config, args.manual_dir, args.data_dir,
                               image_format=args.image_format,
                               jpeg_quality=args.jpeg_quality,
                               num_threads=args.num_threads)
  print(f'built {builder.info.full_name} into {builder.data_dir}: '
        + ', '.join(f'{k}={v.num_examples}'
                    for k, v in builder.info.splits.items()))


if __name__ == '__main__':
  main()
