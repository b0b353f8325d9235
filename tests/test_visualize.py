import glob
import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

import visualize_augmentation
from dataset import input_fn
from dataset import tfrecord_io
from net import model_spec
from net import vgg
from preprocessing import visualize
from tests.conftest import TINY_CLASSES
from tests.conftest import tiny_config
from utility import boxes as box_utils
from utility import config as config_lib
from utility import draw
from utility import image_convention


def _edge_rectangle(box, height, width):
  """0-based inclusive (x1, y1, x2, y2) that utility/draw.py strokes for a normalized box."""
  voc = box_utils.normalized_to_voc_pixels(np.asarray([box], np.float64), height, width)[0]
  x1, y1, x2, y2 = np.round(voc - 1.0).astype(int)
  return (np.clip(x1, 0, width - 1), np.clip(y1, 0, height - 1), np.clip(x2, 0, width - 1),
          np.clip(y2, 0, height - 1))


def test_grid_layout_is_as_square_as_possible():
  assert visualize.grid_layout(1) == (1, 1)
  assert visualize.grid_layout(5) == (2, 3)
  assert visualize.grid_layout(16) == (4, 4)
  assert visualize.grid_layout(17) == (4, 5)


def test_make_grid_places_cells_row_by_row_with_gaps():
  images = np.stack([np.full([20, 30, 3], 10 * (i + 1), np.uint8) for i in range(5)])
  grid = visualize.make_grid(images, gap=4, background=255)
  assert grid.shape == (2 * 20 + 4, 3 * 30 + 2 * 4, 3) and grid.dtype == np.uint8
  for i in range(5):
    top, left = (i // 3) * 24, (i % 3) * 34
    assert (grid[top:top + 20, left:left + 30] == 10 * (i + 1)).all()
  assert (grid[20:24] == 255).all() and (grid[:, 30:34] == 255).all()   # gaps
  assert (grid[24:, 68:] == 255).all()                                  # the empty sixth cell


def test_to_display_image_adds_the_mean_back_and_rounds():
  mean = np.asarray(vgg.IMAGE_MEAN_RGB, np.float32)
  image = np.stack([np.full([2, 2], v, np.float32) for v in (10.4, 0.0, 200.0)], -1) - mean
  image[0, 0] = [-200.0, 140.6 - mean[1], 300.0]                        # clipped, rounded
  display = visualize.to_display_image(image, vgg.CONVENTION)
  assert display.dtype == np.uint8
  np.testing.assert_array_equal(display[1, 1], [10, 0, 200])
  np.testing.assert_array_equal(display[0, 0], [0, 141, 255])
  bgr = visualize.to_display_image(image[..., ::-1], image_convention.ImageConvention(
      vgg.IMAGE_MEAN_RGB, channel_order='bgr'))
  np.testing.assert_array_equal(bgr, display)
  # A scaling convention (Keras MobileNet: pixel / 127.5 - 1) is undone too.
  keras = image_convention.ImageConvention((127.5,) * 3, (127.5,) * 3)
  np.testing.assert_array_equal(visualize.to_display_image(
      np.array([[[-1.0, 1.0, 0.2]]], np.float32), keras), [[[0, 255, 153]]])


def test_draw_sample_strokes_each_box_in_its_class_colour(tmp_path):
  image = np.full([100, 160, 3], 100, np.uint8)
  boxes = np.array([[0.5, 0.125, 0.9, 0.5], [0.3, 0.6, 0.7, 0.95]], np.float32)
  labels = np.array([2, 5])
  drawn = visualize.draw_sample(image, boxes, labels, TINY_CLASSES)
  assert (image == 100).all()                                           # input untouched
  for box, label in zip(boxes, labels):
    x1, y1, x2, y2 = _edge_rectangle(box, 100, 160)
    assert (x1, y1, x2, y2) == (round(box[1] * 160), round(box[0] * 100),
                                round(box[3] * 160) - 1, round(box[2] * 100) - 1)
    color = draw.class_color(int(label), channel_order='rgb')
    middle_row, middle_col = (y1 + y2) // 2, (x1 + x2) // 2
    for row, col in [(y1, middle_col), (y2, middle_col), (middle_row, x1), (middle_row, x2),
                     (y1 - 1, x1 + 1)]:                                 # edges, label above
      assert tuple(drawn[row, col]) == color
    for row, col in [(y2 - 1, middle_col), (middle_row, x1 + 1), (y2 + 1, middle_col)]:
      assert tuple(drawn[row, col]) == (100, 100, 100)                  # off the edges
  # Written as a PNG, read back by OpenCV (BGR): the same pixels.
  path = str(tmp_path / 'one.png')
  visualize.write_image(path, drawn)
  np.testing.assert_array_equal(cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB), drawn)


def test_write_image_rejects_an_unknown_extension(tmp_path):
  with pytest.raises(ValueError, match=r'use an image extension such as \.png'):
    visualize.write_image(str(tmp_path / 'grid.txt'), np.zeros([4, 4, 3], np.uint8))
  assert os.listdir(tmp_path) == []


def test_config_for_image_size_and_model_dir(tmp_path):
  assert visualize_augmentation.config_for_image_size(300, TINY_CLASSES).model.architecture == 'ssd300'
  assert visualize_augmentation.config_for_image_size(512, TINY_CLASSES).model.architecture == 'ssd512'
  quick = visualize_augmentation.config_for_image_size(160, TINY_CLASSES).model
  assert (quick.architecture, quick.image_size, quick.class_names) == ('ssd_quick', 160,
                                                                      TINY_CLASSES)
  with pytest.raises(ValueError, match='image_size 64 is too small for ssd_quick'):
    visualize_augmentation.config_for_image_size(64, TINY_CLASSES)
  config_lib.save(tiny_config(), str(tmp_path))
  assert visualize_augmentation.resolve_config('unused', 300, str(tmp_path)) == tiny_config()
  with pytest.raises(FileNotFoundError, match='ssd_config.json not found'):
    visualize_augmentation.resolve_config('unused', 300, str(tmp_path / 'missing'))


def test_num_images_must_be_positive(tiny_records):
  with pytest.raises(ValueError, match='--num_images must be at least 1; got 0'):
    input_fn.sample_training_batch(os.path.join(tiny_records['records'], 'train-*'), tiny_config(),
                                   model_spec.model_inputs(tiny_config().model), 0)


def test_grid_of_augmented_training_samples(tiny_records, tmp_path):
  output = str(tmp_path / 'augmented.png')
  grid, samples, ssd_config = visualize_augmentation.write_augmented_grid(
      tiny_records['records'], output, num_images=5, seed=7, image_size=160)
  # Class names from the converter's summary; 5 cells of 160 px in 2 rows of 3.
  assert ssd_config.model.class_names == TINY_CLASSES
  assert grid.shape == (2 * 160 + 4, 3 * 160 + 2 * 4, 3)
  # A crop may keep no box (as in Caffe), so only the total is sure to be positive.
  assert samples['image'].shape == (5, 160, 160, 3) and samples['num_boxes'].sum() > 0
  np.testing.assert_array_equal(cv2.cvtColor(cv2.imread(output), cv2.COLOR_BGR2RGB), grid)
  for i in range(5):
    top, left = (i // 3) * 164, (i % 3) * 164
    cell = grid[top:top + 160, left:left + 160]
    # Outside the drawn outlines and labels the cell is the network input plus the mean.
    assert (cell == visualize.to_display_image(samples['image'][i], vgg.CONVENTION)).all(-1).mean() > 0.7
    for box, label in zip(samples['boxes'][i, :samples['num_boxes'][i]],
                          samples['labels'][i, :samples['num_boxes'][i]]):
      x1, y1, x2, y2 = _edge_rectangle(box, 160, 160)
      color = draw.class_color(int(label), channel_order='rgb')
      # Its outline in its class colour: the bottom edge, or, where another box's label
      # covers that, its left or right edge.
      edges = [cell[y2, x1:x2 + 1], cell[y1:y2 + 1, x1], cell[y1:y2 + 1, x2]]
      assert any((edge == color).all(-1).any() for edge in edges)
  again, _, _ = visualize_augmentation.write_augmented_grid(tiny_records['records'], output, num_images=5,
                                               seed=7, image_size=160)
  np.testing.assert_array_equal(again, grid)
  other, _, _ = visualize_augmentation.write_augmented_grid(tiny_records['records'], output, num_images=5,
                                               seed=8, image_size=160)
  assert not np.array_equal(other, grid)


def test_grid_of_test_images_without_augmentation_shows_every_ground_truth_box(tiny_records,
                                                                                tmp_path):
  # The tiny set's 8 val images, as evaluation feeds them: every box of every record (difficult
  # ones too), exactly as decoded, and the image resized only.
  records = sorted(glob.glob(os.path.join(tiny_records['records'], 'val-*')))
  with tf.Graph().as_default():
    decoded = tf.data.TFRecordDataset(records).map(tfrecord_io.decode_example)
    element = tf.compat.v1.data.make_one_shot_iterator(decoded).get_next()
    with tf.compat.v1.Session() as session:
      truth = []
      while True:
        try:
          truth.append(session.run({'boxes': element['boxes'], 'labels': element['labels']}))
        except tf.errors.OutOfRangeError:
          break
  assert len(truth) == 8
  output = str(tmp_path / 'test_images.png')
  grid, samples, _ = visualize_augmentation.write_augmented_grid(
      tiny_records['records'], output, num_images=8, file_pattern='val-*', image_size=160,
      augment=False)
  assert grid.shape == (3 * 160 + 2 * 4, 3 * 160 + 2 * 4, 3)  # 8 cells in 3 rows of 3
  drawn = sorted((tuple(np.round(box, 6)), int(label))
                 for i in range(8) for box, label in zip(
                     samples['boxes'][i, :samples['num_boxes'][i]],
                     samples['labels'][i, :samples['num_boxes'][i]]))
  expected = sorted((tuple(np.round(box, 6)), int(label))
                    for record in truth for box, label in zip(record['boxes'], record['labels']))
  assert drawn == expected and len(drawn) == sum(len(r['labels']) for r in truth)
  with pytest.raises(ValueError, match='--num_images must be at least 1; got 0'):
    input_fn.sample_eval_batch(os.path.join(tiny_records['records'], 'val-*'), tiny_config(),
                               model_spec.model_inputs(tiny_config().model), 0)
