"""Drawing detections and ground-truth boxes on images with OpenCV.

Boxes come either normalized, ``[ymin, xmin, ymax, xmax]`` in [0, 1] as in the graph, or as
devkit pixels, ``[xmin, ymin, xmax, ymax]`` 1-based inclusive as in the result files. Both are
turned into 0-based pixel rectangles through ``utility.boxes.normalized_to_voc_pixels``, so a
box is drawn on exactly the pixels the VOC convention says it covers.

Colours are (B, G, R) triples by default; pass ``channel_order='rgb'`` for RGB images.
"""

import colorsys

import cv2
import numpy as np

from utility import boxes as box_utils
from utility import labels

BOX_FORMATS = ('normalized', 'voc_pixels')
# 20 maximally distinct colours (RGB; Sasha Trubetskoy's list) for labels 1..20; labels beyond
# step the hue by the golden ratio.
_PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (67, 99, 216), (245, 130, 49),
    (145, 30, 180), (66, 212, 244), (240, 50, 230), (191, 239, 69), (250, 190, 212),
    (70, 153, 144), (220, 190, 255), (154, 99, 36), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 216, 177), (0, 0, 117), (169, 169, 169),
)
_GOLDEN_RATIO_CONJUGATE = 0.618033988749895


def class_color(label, channel_order='bgr'):
  """A deterministic colour per class label, as ints in [0, 255].

  Labels 1..20 (the VOC classes) take a fixed palette of distinct colours; higher labels step
  the hue by the golden ratio; the background (label 0) is mid grey.

  Args:
    label: int class label.
    channel_order: 'bgr' (OpenCV) or 'rgb'.

  Returns:
    A 3-tuple of ints in the requested channel order.
  """
  if label == labels.BACKGROUND_LABEL:
    rgb = (128, 128, 128)
  elif 1 <= label <= len(_PALETTE):
    rgb = _PALETTE[label - 1]
  else:
    hue = (label * _GOLDEN_RATIO_CONJUGATE) % 1.0
    rgb = tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(hue, 0.85, 0.95))
  return rgb if channel_order == 'rgb' else rgb[::-1]


def line_thickness(image_shape):
  """Box line width in pixels: 1 up to ~900 px of height + width, growing with the image."""
  return max(1, int(round((image_shape[0] + image_shape[1]) / 600.0)))


def _pixel_rectangles(boxes, box_format, height, width):
  """0-based inclusive integer corners [n, 4] (x1, y1, x2, y2), clipped to the image."""
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  if box_format == 'normalized':
    boxes = box_utils.normalized_to_voc_pixels(boxes, height, width)
  elif box_format != 'voc_pixels':
    raise ValueError('Unknown box_format %r; use one of %s.' % (box_format, BOX_FORMATS))
  corners = np.round(boxes - 1.0).astype(np.int64)  # 1-based inclusive -> 0-based inclusive
  return np.clip(corners, 0, [width - 1, height - 1, width - 1, height - 1])


def _draw_label(image, text, corner, color, thickness, channel_order):
  """Text on a filled box in ``color``, above the corner if it fits, else just inside; moved
  left as far as needed to keep the whole label in the image (a box at the right edge)."""
  font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.4 + 0.1 * thickness
  (text_w, text_h), baseline = cv2.getTextSize(text, font, scale, 1)
  x, y = corner
  x = max(0, min(x, image.shape[1] - text_w - 3))
  height = text_h + baseline + 2
  top = y - height if y - height >= 0 else y
  cv2.rectangle(image, (x, top), (x + text_w + 2, top + height - 1), color, cv2.FILLED)
  red, green, blue = color if channel_order == 'rgb' else color[::-1]
  luminance = 0.299 * red + 0.587 * green + 0.114 * blue
  text_color = (0, 0, 0) if luminance > 140 else (255, 255, 255)
  cv2.putText(image, text, (x + 1, top + text_h + 1), font, scale, text_color, 1, cv2.LINE_AA)


def _check_image(image):
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise ValueError('Expected a uint8 [height, width, 3] image, got %s %s.'
                     % (image.dtype, image.shape))
  return image.copy()


def draw_detections(image, boxes, classes, scores, class_names=labels.VOC_CLASSES,
                    box_format='normalized', channel_order='bgr', score_threshold=0.0,
                    num_detections=None, thickness=None):
  """Draws each detection as a class-coloured box with a 'name 0.87' label.

  Args:
    image: uint8 [height, width, 3] (not modified).
    boxes: [num_detections, 4] in ``box_format``: 'normalized' [ymin, xmin, ymax, xmax] or
      'voc_pixels' [xmin, ymin, xmax, ymax] 1-based.
    classes: int [num_detections], labels 1..len(class_names); 0 (padding) is skipped.
    scores: float [num_detections].
    class_names: object class names, label 1 first.
    box_format, channel_order: see above; channel_order says how to order the colours.
    score_threshold: detections with a lower score are not drawn.
    num_detections: only the first num_detections rows are used (padded NMS output).
    thickness: line width in pixels; default ``line_thickness(image.shape)``.

  Returns:
    A new uint8 [height, width, 3] image.
  """
  canvas = _check_image(image)
  count = len(classes) if num_detections is None else int(num_detections)
  names = labels.label_to_name(class_names)
  thickness = thickness or line_thickness(canvas.shape)
  rectangles = _pixel_rectangles(np.asarray(boxes)[:count], box_format, *canvas.shape[:2])
  keep = [i for i in range(count) if classes[i] != 0 and scores[i] >= score_threshold]
  for i in keep:
    x1, y1, x2, y2 = (int(v) for v in rectangles[i])
    cv2.rectangle(canvas, (x1, y1), (x2, y2), class_color(int(classes[i]), channel_order),
                  thickness)
  for i in keep:
    label = int(classes[i])
    _draw_label(canvas, '%s %.2f' % (names.get(label, str(label)), scores[i]),
                tuple(int(v) for v in rectangles[i][:2]), class_color(label, channel_order),
                thickness, channel_order)
  return canvas


def draw_boxes_normalized(image, boxes_normalized, classes=None, class_names=labels.VOC_CLASSES,
                          channel_order='bgr', color=None, thickness=None):
  """Draws normalized boxes (e.g. ground truth after augmentation), named when classes given.

  Args:
    image: uint8 [height, width, 3] (not modified).
    boxes_normalized: float [num_boxes, 4] [ymin, xmin, ymax, xmax] in [0, 1].
    classes: optional int [num_boxes] labels; each box gets its class colour and name.
    class_names: object class names, label 1 first.
    channel_order: 'bgr' or 'rgb'.
    color: one colour for every box (overrides the class colours).
    thickness: line width; default ``line_thickness(image.shape)``.

  Returns:
    A new uint8 [height, width, 3] image.
  """
  canvas = _check_image(image)
  thickness = thickness or line_thickness(canvas.shape)
  rectangles = _pixel_rectangles(boxes_normalized, 'normalized', *canvas.shape[:2])
  names = labels.label_to_name(class_names)
  for i, (x1, y1, x2, y2) in enumerate(rectangles.tolist()):
    label = None if classes is None else int(classes[i])
    box_color = color or class_color(label or 0, channel_order)
    cv2.rectangle(canvas, (x1, y1), (x2, y2), box_color, thickness)
    if label is not None:
      _draw_label(canvas, names.get(label, str(label)), (x1, y1), box_color, thickness,
                  channel_order)
  return canvas
