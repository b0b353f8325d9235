import cv2
import numpy as np
import pytest

from utility import boxes
from utility import draw

HEIGHT, WIDTH = 100, 200
# VOC pixels xmin=21, ymin=31, xmax=120, ymax=80 cover 0-based columns 20..119, rows 30..79.
VOC_BOX = [21.0, 31.0, 120.0, 80.0]


def _draw_one(image, label=3, **kwargs):
  return draw.draw_detections(image, [VOC_BOX], [label], [0.87], box_format='voc_pixels',
                              **kwargs)


def test_class_color_is_deterministic_and_distinct():
  assert draw.class_color(1) == (75, 25, 230)                 # palette red, BGR
  assert draw.class_color(1, channel_order='rgb') == (230, 25, 75)
  assert draw.class_color(0) == (128, 128, 128)
  colors = [draw.class_color(label) for label in range(1, 41)]
  assert len(set(colors)) == 40
  assert colors == [draw.class_color(label) for label in range(1, 41)]


def test_box_edges_have_the_class_colour_and_the_rest_is_unchanged():
  image = np.zeros([HEIGHT, WIDTH, 3], np.uint8)
  out = _draw_one(image)
  color = draw.class_color(3)
  assert draw.line_thickness(image.shape) == 1
  for row, col in [(79, 70), (55, 20), (55, 119), (30, 70)]:   # bottom, left, right, top edges
    assert tuple(out[row, col]) == color
  for row, col in [(78, 70), (80, 70), (55, 21), (55, 118), (55, 120), (95, 190)]:
    assert tuple(out[row, col]) == (0, 0, 0)                   # just off the edges, far away
  # Label background: filled class colour right above the top-left corner.
  assert tuple(out[29, 20]) == color
  # Everything drawn lies in the box outline or the label above it.
  changed_rows, changed_cols = np.nonzero((out != image).any(axis=-1))
  assert changed_rows.max() == 79 and changed_cols.min() == 20 and changed_cols.max() == 119
  assert changed_rows.min() >= 30 - 25
  inside = out[31:79, 21:119]
  assert not inside.any()
  assert not image.any()                                       # input untouched


def test_normalized_boxes_draw_the_same_pixels():
  image = np.full([HEIGHT, WIDTH, 3], 40, np.uint8)
  ymin, xmin, ymax, xmax = boxes.voc_pixels_to_normalized(*VOC_BOX, WIDTH, HEIGHT)
  normalized = draw.draw_detections(image, [[ymin, xmin, ymax, xmax]], [3], [0.87])
  np.testing.assert_array_equal(normalized, _draw_one(image))


def test_rgb_order_padding_threshold_and_thickness():
  image = np.zeros([HEIGHT, WIDTH, 3], np.uint8)
  assert tuple(_draw_one(image, channel_order='rgb')[79, 70]) == draw.class_color(3, 'rgb')
  # Class 0 rows (NMS padding), rows past num_detections and low scores are not drawn.
  assert not draw.draw_detections(image, [VOC_BOX], [0], [0.9], box_format='voc_pixels').any()
  assert not draw.draw_detections(image, [VOC_BOX], [3], [0.9], box_format='voc_pixels',
                                  num_detections=0).any()
  assert not _draw_one(image, score_threshold=0.9).any()
  big = np.zeros([900, 1200, 3], np.uint8)
  assert draw.line_thickness(big.shape) == 4                  # (900 + 1200) / 600 = 3.5 -> 4
  column = draw.draw_detections(big, [[0.6, 0.25, 0.75, 0.5]], [2], [0.5])[:, 450]
  bottom_rows = np.nonzero(column[600:].any(axis=-1))[0] + 600
  assert 4 <= len(bottom_rows) <= 5 and 674 in bottom_rows     # bottom edge row 674


def test_draw_boxes_normalized_uses_class_or_given_colour():
  image = np.zeros([HEIGHT, WIDTH, 3], np.uint8)
  ymin, xmin, ymax, xmax = boxes.voc_pixels_to_normalized(*VOC_BOX, WIDTH, HEIGHT)
  out = draw.draw_boxes_normalized(image, [[ymin, xmin, ymax, xmax]], classes=[5])
  assert tuple(out[79, 70]) == draw.class_color(5)
  plain = draw.draw_boxes_normalized(image, [[ymin, xmin, ymax, xmax]], color=(0, 255, 0))
  assert tuple(plain[79, 70]) == (0, 255, 0) and tuple(plain[29, 20]) == (0, 0, 0)  # no label


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match='Expected a uint8'):
    draw.draw_detections(np.zeros([4, 4], np.uint8), [], [], [])
  with pytest.raises(ValueError, match="Unknown box_format 'xyxy'"):
    draw.draw_detections(np.zeros([4, 4, 3], np.uint8), [[0, 0, 1, 1]], [1], [1.0],
                         box_format='xyxy')


def test_a_label_at_the_right_edge_stays_whole_inside_the_image():
  image = np.zeros([HEIGHT, WIDTH, 3], np.uint8)
  # A box at the right edge: columns 180..199; its label 'cow 0.87' is wider than 20 px.
  out = draw.draw_detections(image, [[181.0, 31.0, 200.0, 80.0]], [10], [0.87],
                             box_format='voc_pixels')
  color = draw.class_color(10)
  text_w = cv2.getTextSize('cow 0.87', cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)[0][0]
  label_row = out[29]  # right above the box, inside the label
  filled = np.nonzero((label_row == color).all(axis=-1))[0]
  assert filled.min() == WIDTH - text_w - 3 and filled.max() == WIDTH - 1
