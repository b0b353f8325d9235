import numpy as np
import pytest

from tests.graph_test_util import execute
from utility import boxes


def test_voc_pixels_to_normalized_whole_image_and_one_pixel():
  # A 200 x 100 (w x h) image: the whole-image box is [0, 0, 1, 1]; pixel (1,1) is 1/100 x 1/200.
  assert boxes.voc_pixels_to_normalized(1, 1, 200, 100, 200, 100) == (0.0, 0.0, 1.0, 1.0)
  assert boxes.voc_pixels_to_normalized(1, 1, 1, 1, 200, 100) == (0.0, 0.0, 0.01, 0.005)


def test_pixel_conversion_round_trip_is_exact():
  pixels = np.array([[48., 240., 195., 371.], [8., 12., 352., 498.], [1., 1., 500., 375.]])
  width, height = 500., 375.
  ymin, xmin, ymax, xmax = boxes.voc_pixels_to_normalized(
      pixels[:, 0], pixels[:, 1], pixels[:, 2], pixels[:, 3], width, height)
  normalized = np.stack([ymin, xmin, ymax, xmax], axis=-1)
  np.testing.assert_allclose(normalized[2], [0, 0, 1, 1])
  back = boxes.normalized_to_voc_pixels(normalized, height, width)
  np.testing.assert_allclose(back, pixels, atol=1e-9)


def test_iou_hand_computed():
  a = np.array([[0., 0., 0.5, 0.5], [0., 0., 1., 1.]], np.float32)
  b = np.array([[0.25, 0.25, 0.75, 0.75], [0.5, 0.5, 0.5, 0.9], [0., 0., 0.5, 0.5]], np.float32)
  result = execute(boxes.iou, a, b)
  # a0 vs b0: inter 0.0625, union 0.25 + 0.25 - 0.0625.
  np.testing.assert_allclose(result, [[0.0625 / 0.4375, 0., 1.], [0.25, 0., 0.25]], rtol=1e-6)


def test_iou_of_degenerate_boxes_is_zero_not_nan():
  zero = np.zeros([1, 4], np.float32)
  assert execute(boxes.iou, zero, zero).tolist() == [[0.0]]


def test_center_corner_round_trip():
  b = np.array([[0.1, 0.2, 0.5, 0.9]], np.float32)
  out = execute(lambda t: boxes.center_to_corners(*boxes.corners_to_center(t)), b)
  np.testing.assert_allclose(out, b, atol=1e-7)
  cy, cx, h, w = execute(boxes.corners_to_center, b)
  np.testing.assert_allclose([cy[0], cx[0], h[0], w[0]], [0.3, 0.55, 0.4, 0.7], atol=1e-7)


def test_clip_to_window():
  b = np.array([[-0.2, 0.5, 1.3, 0.7]], np.float32)
  np.testing.assert_allclose(execute(boxes.clip_to_window, b), [[0., 0.5, 1., 0.7]])
