r"""Writes a grid of augmented training samples, as the network sees them, with their boxes.

    python -m preprocessing.visualize --data_dir=DIR --num_images=16 --output=augmented.png \
        [--file_pattern=train-*] [--seed=S] [--image_size=300] [--model_dir=DIR]

The samples come from the real training pipeline (``dataset.input_fn.train_dataset``: decode,
augmentation, target encoding, batching); only the backbone's mean subtraction (and channel
order) is undone for display. The boxes drawn are the ground truth the pipeline yields for each
sample (difficult objects are already left out unless the config keeps them), in their class
colour (``utility/draw.py``) with the class name.

Settings: ``--model_dir`` takes the whole configuration (image size, class names, augmentation
settings) from the ``ssd_config.json`` that train_ssd.py wrote; otherwise the reference
settings at ``--image_size`` with the class names of ``<data_dir>/conversion_summary.json``
(VOC when absent). ``--seed`` makes the grid reproducible; without it every run differs.
"""

import math
import os
import sys

if not __package__:
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from dataset import input_fn  # noqa: E402
from net import model_spec  # noqa: E402
from net import vgg  # noqa: E402
from utility import config as config_lib  # noqa: E402
from utility import draw  # noqa: E402
from utility import file_io  # noqa: E402
from utility import ssd_flags  # noqa: E402

tf1 = tf.compat.v1

GRID_GAP = 4            # pixels between cells
GRID_BACKGROUND = 255   # white gaps (and empty cells of the last row)
# Architectures whose preset default boxes fit an input size; other sizes use ssd_quick with
# default boxes spread linearly (paper eq. 4): they only shape the target encoding, not the
# images drawn here.
_PRESET_ARCHITECTURES = {300: 'ssd300', 512: 'ssd512'}
_LINEAR_ANCHOR_SCALES = (0.1, 0.9)


def config_for_image_size(image_size, class_names):
  """Reference SSDConfig at a square input size, for tools run without a trained model.

  Args:
    image_size: int, network input side in pixels.
    class_names: tuple of object class names (label 1 first).

  Returns:
    utility.config.SSDConfig: ssd300/ssd512 with their preset default boxes at 300/512,
    otherwise ssd_quick with linearly spread default boxes.
  """
  architecture = _PRESET_ARCHITECTURES.get(image_size)
  if architecture:
    model = config_lib.ModelConfig(architecture=architecture, image_size=image_size,
                                   class_names=tuple(class_names))
  else:
    model = config_lib.ModelConfig(
        architecture='ssd_quick', image_size=image_size, class_names=tuple(class_names),
        anchor_min_scale=_LINEAR_ANCHOR_SCALES[0], anchor_max_scale=_LINEAR_ANCHOR_SCALES[1])
  model_spec.num_anchors(model)  # fails early, naming the smallest usable size
  return config_lib.SSDConfig(model=model)


def resolve_config(data_dir, image_size=300, model_dir=None):
  """The SSDConfig to visualize with: the trained model's, else the reference at image_size.

  Raises:
    FileNotFoundError: if model_dir holds no ssd_config.json.
    ValueError: if image_size is too small for the network.
  """
  if model_dir:
    return config_lib.load(model_dir)
  return config_for_image_size(image_size, ssd_flags.resolve_class_names('', data_dir))


def augmented_samples(file_pattern, ssd_config, num_images, seed=None):
  """Runs the training input pipeline once and returns num_images samples.

  Args:
    file_pattern: glob of training shards.
    ssd_config: utility.config.SSDConfig.
    num_images: int >= 1.
    seed: optional int; the same seed gives the same samples.

  Returns:
    dict of numpy arrays: 'image' float32 [num_images, size, size, 3] as fed to the network
    (mean subtracted), 'boxes' float32 [num_images, max_boxes, 4] normalized [ymin, xmin,
    ymax, xmax], 'labels' int64 [num_images, max_boxes], 'num_boxes' int32 [num_images].

  Raises:
    ValueError: if num_images < 1 or the pattern matches no file.
  """
  if num_images < 1:
    raise ValueError('--num_images must be at least 1; got %d.' % num_images)
  with tf.Graph().as_default():
    dataset = input_fn.train_dataset(file_pattern, ssd_config, num_images, seed=seed)
    features, labels = tf1.data.make_one_shot_iterator(dataset).get_next()
    fetches = {'image': features['image'], 'boxes': labels['boxes'],
               'labels': labels['labels'], 'num_boxes': labels['num_boxes']}
    with tf1.Session() as session:
      return session.run(fetches)


def to_display_image(image, mean_rgb=vgg.IMAGE_MEAN_RGB, channel_order=vgg.CHANNEL_ORDER):
  """Undoes the backbone's input convention: float32 [h, w, 3] -> uint8 RGB [h, w, 3].

  Args:
    image: float32 [height, width, 3], pixel values minus mean_rgb, in channel_order.
    mean_rgb: the (R, G, B) mean that was subtracted.
    channel_order: 'RGB' or 'BGR' (case-insensitive), the order of image's channels.

  Returns:
    uint8 [height, width, 3] RGB, rounded and clipped to [0, 255].
  """
  image = np.asarray(image, np.float32)
  if channel_order.lower() == 'bgr':
    image = image[..., ::-1]
  return np.clip(np.round(image + np.asarray(mean_rgb, np.float32)), 0, 255).astype(np.uint8)


def draw_sample(image_rgb, boxes, labels, class_names):
  """Draws normalized boxes with class colours and names on a uint8 RGB image (a new one)."""
  return draw.draw_boxes_normalized(image_rgb, boxes, classes=labels, class_names=class_names,
                                    channel_order='rgb')


def grid_layout(num_images):
  """(rows, columns) of the grid: as square as possible, full rows first."""
  columns = int(math.ceil(math.sqrt(num_images)))
  return int(math.ceil(num_images / float(columns))), columns


def make_grid(images, gap=GRID_GAP, background=GRID_BACKGROUND):
  """Tiles images row by row with `gap` pixels between cells.

  Args:
    images: uint8 [num_images, height, width, 3].

  Returns:
    uint8 [rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap, 3]
    (grid_layout); image i sits at row i // columns, column i % columns.
  """
  images = np.asarray(images)
  num_images, height, width = images.shape[:3]
  rows, columns = grid_layout(num_images)
  grid = np.full([rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap, 3],
                 background, np.uint8)
  for i, image in enumerate(images):
    top, left = (i // columns) * (height + gap), (i % columns) * (width + gap)
    grid[top:top + height, left:left + width] = image
  return grid


def render_grid(samples, class_names):
  """The grid image (uint8 RGB) of the samples of augmented_samples, boxes drawn."""
  cells = [draw_sample(to_display_image(image), boxes[:count], labels[:count], class_names)
           for image, boxes, labels, count in zip(samples['image'], samples['boxes'],
                                                  samples['labels'], samples['num_boxes'])]
  return make_grid(cells)


def write_image(path, image_rgb):
  """Writes a uint8 RGB image atomically, in the format of the path's extension (e.g. .png).

  Raises:
    ValueError: if OpenCV cannot encode that format.
  """
  extension = os.path.splitext(path)[1] or '.png'
  try:
    ok, encoded = cv2.imencode(extension, cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
  except cv2.error:
    ok = False
  if not ok:
    raise ValueError('Cannot write %s: use an image extension such as .png or .jpg for '
                     '--output.' % path)
  file_io.atomic_write(path, encoded.tobytes())


def write_augmented_grid(data_dir, output, num_images=16, file_pattern='train-*', seed=None,
                         image_size=300, model_dir=None):
  """The tool's work: samples from the training pipeline, drawn into a grid at output.

  Returns:
    (grid uint8 RGB [grid_height, grid_width, 3], the samples dict, the SSDConfig used).
  """
  ssd_config = resolve_config(data_dir, image_size, model_dir)
  samples = augmented_samples(os.path.join(data_dir, file_pattern), ssd_config, num_images, seed)
  grid = render_grid(samples, ssd_config.model.class_names)
  write_image(output, grid)
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
  flags.mark_flag_as_required('data_dir')


def main(argv):
  del argv
  try:
    grid, samples, ssd_config = write_augmented_grid(
        FLAGS.data_dir, FLAGS.output, FLAGS.num_images, FLAGS.file_pattern, FLAGS.seed,
        FLAGS.image_size, FLAGS.model_dir)
  except (ValueError, FileNotFoundError) as error:
    sys.exit('Error: %s' % error)
  print('Wrote %s: %d samples at %d px (%s), %d boxes, grid %dx%d.' % (
      FLAGS.output, len(samples['num_boxes']), ssd_config.model.image_size,
      ssd_config.model.architecture, int(samples['num_boxes'].sum()), grid.shape[1],
      grid.shape[0]))


if __name__ == '__main__':
  define_flags()
  app.run(main)
