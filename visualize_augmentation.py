r"""Writes a grid of augmented training samples, as the network sees them, with their boxes.

    python visualize_augmentation.py --data_dir=DIR --num_images=16 --output=augmented.png \
        [--file_pattern=train-*] [--seed=S] [--image_size=300] [--model_dir=DIR]
    python visualize_augmentation.py --noaugment --file_pattern='val-*' ...  # test images

With ``--noaugment`` the grid shows the first records of the shards as evaluation feeds them
(resized, not augmented) with all their ground truth, difficult objects included.

The samples come from the real training pipeline (``dataset.input_fn.train_dataset``: decode,
augmentation, target encoding, batching); only the backbone's image convention is undone for
display (preprocessing/visualize.py draws). The boxes drawn are the ground truth the pipeline
yields for each sample (difficult objects are already left out unless the config keeps them).

Settings: ``--model_dir`` takes the whole configuration (image size, backbone, class names,
augmentation settings) from the ``ssd_config.json`` that train_ssd.py wrote; otherwise the
reference settings at ``--image_size`` with the class names of
``<data_dir>/conversion_summary.json`` (VOC when absent). ``--seed`` makes the grid reproducible.
"""

import os
import sys

from absl import app
from absl import flags

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from dataset import input_fn  # noqa: E402
from net import model_spec  # noqa: E402
from preprocessing import visualize  # noqa: E402
from utility import config as config_lib  # noqa: E402
from utility import ssd_flags  # noqa: E402

# The reference settings at an input size (also bench/input_pipeline.py's).
config_for_image_size = model_spec.config_for_image_size


def resolve_config(data_dir, image_size=300, model_dir=None):
  """The trained model's SSDConfig, else the reference at image_size (FileNotFoundError if
  model_dir holds no ssd_config.json; ValueError if image_size is too small)."""
  if model_dir:
    return config_lib.load(model_dir)
  return config_for_image_size(image_size, ssd_flags.resolve_class_names('', data_dir))


def write_augmented_grid(data_dir, output, num_images=16, file_pattern='train-*', seed=None,
                         image_size=300, model_dir=None, augment=True):
  """Samples from the training pipeline (augment=False: the evaluation pipeline's first
  records) drawn into a grid at output.

  Returns:
    (grid uint8 RGB [grid_height, grid_width, 3], the samples dict, the SSDConfig used).
  """
  ssd_config = resolve_config(data_dir, image_size, model_dir)
  inputs = model_spec.model_inputs(ssd_config.model)
  pattern = os.path.join(data_dir, file_pattern)
  if augment:
    samples = input_fn.sample_training_batch(pattern, ssd_config, inputs, num_images, seed)
  else:
    samples = input_fn.sample_eval_batch(pattern, ssd_config, inputs, num_images)
  grid = visualize.render_grid(samples, ssd_config.model.class_names, inputs.convention)
  visualize.write_image(output, grid)
  return grid, samples, ssd_config


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string('data_dir', None, 'Folder with the train-* TFRecord shards.')
  flags.DEFINE_string('output', 'augmented.png', 'Grid image to write (.png, .jpg).')
  flags.DEFINE_integer('num_images', 16, 'Augmented samples in the grid.')
  flags.DEFINE_string('file_pattern', 'train-*', 'Shards to read, relative to data_dir.')
  flags.DEFINE_integer('seed', None, 'Seed of file order, shuffling and augmentation; unset = '
                       'different samples on every run.')
  flags.DEFINE_integer('image_size', 300, 'Network input side (ignored with --model_dir).')
  flags.DEFINE_string('model_dir', None, "Take image size, class names and augmentation "
                      "settings from this trained model's ssd_config.json.")
  flags.DEFINE_bool('augment', True, 'Augment as training does; --noaugment: the first records '
                    'as evaluation feeds them, with every ground-truth box.')
  flags.mark_flag_as_required('data_dir')


def main(argv):
  del argv
  try:
    grid, samples, ssd_config = write_augmented_grid(
        FLAGS.data_dir, FLAGS.output, FLAGS.num_images, FLAGS.file_pattern, FLAGS.seed,
        FLAGS.image_size, FLAGS.model_dir, FLAGS.augment)
  except (ValueError, FileNotFoundError) as error:
    sys.exit('Error: %s' % error)
  print('Wrote %s: %d samples at %d px (%s), %d boxes, grid %dx%d.' % (
      FLAGS.output, len(samples['num_boxes']), ssd_config.model.image_size,
      ssd_config.model.architecture, int(samples['num_boxes'].sum()), grid.shape[1],
      grid.shape[0]))


if __name__ == '__main__':
  define_flags()
  app.run(main)
