"""Drawing augmented training samples as the network sees them: display conversion, boxes, grid.

The command-line tool is ``visualize_augmentation.py`` at the top of the repository; this module
holds its drawing (numpy and OpenCV only): the backbone's image convention is undone for display
and the ground-truth boxes are drawn in their class colour (``utility/draw.py``) with the class
name.
"""

import math
import os

import cv2
import numpy as np

from utility import draw
from utility import file_io

GRID_GAP = 4            # pixels between cells
GRID_BACKGROUND = 255   # white gaps (and empty cells of the last row)


def to_display_image(image, convention):
  """Undoes the backbone's input convention: float32 [h, w, 3] -> uint8 RGB [h, w, 3].

  Args:
    image: float32 [height, width, 3] in `convention` (what the network is fed).
    convention: utility.image_convention.ImageConvention of the model's backbone.

  Returns:
    uint8 [height, width, 3] RGB, rounded and clipped to [0, 255].
  """
  pixels = convention.to_rgb_pixels_numpy(image)
  return np.clip(np.round(pixels), 0, 255).astype(np.uint8)


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


def render_grid(samples, class_names, convention):
  """The grid image (uint8 RGB) of training samples (dataset.input_fn.sample_training_batch),
  boxes drawn; `convention` is the backbone's, undone for display."""
  cells = [draw_sample(to_display_image(image, convention), boxes[:count], labels[:count],
                       class_names)
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
