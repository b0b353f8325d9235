"""Box conventions and TF box ops.

Inside the graph every box is float32 ``[..., 4]`` as ``[ymin, xmin, ymax, xmax]``
normalized to [0, 1] by the image height and width. Pixel boxes exist only at the edges:
VOC XML in, devkit result files and drawings out. They are converted by exactly one pair of
functions, ``voc_pixels_to_normalized`` and ``normalized_to_voc_pixels``, which invert each
other exactly.

VOC pixel convention: XML boxes are 1-based, inclusive pixels, so a box covering the whole
``width`` x ``height`` image is xmin=1, ymin=1, xmax=width, ymax=height. We map a min edge
``v`` to ``(v - 1) / size`` and a max edge to ``v / size``: the whole image becomes
[0, 0, 1, 1] and a one-pixel box has normalized width 1 / width.

The pixel conversions use plain arithmetic, so they accept Python floats, numpy arrays or
tensors. The TF ops below need tensors.
"""

import numpy as np
import tensorflow as tf


def voc_pixels_to_normalized(xmin, ymin, xmax, ymax, width, height):
  """1-based inclusive VOC pixel edges -> normalized (ymin, xmin, ymax, xmax).

  Args:
    xmin, ymin, xmax, ymax: pixel edges as in VOC XML (scalars or arrays of one shape).
    width, height: image size in pixels.

  Returns:
    A tuple (ymin, xmin, ymax, xmax) of normalized edges, same type as the inputs.
  """
  return ((ymin - 1.0) / height, (xmin - 1.0) / width, ymax / height, xmax / width)


def normalized_to_voc_pixels(boxes_normalized, height, width):
  """Normalized [..., 4] (ymin, xmin, ymax, xmax) -> 1-based VOC pixels (xmin, ymin, xmax, ymax).

  The exact inverse of ``voc_pixels_to_normalized``; numpy in, numpy out (float64).

  Args:
    boxes_normalized: array [..., 4] in [ymin, xmin, ymax, xmax] order.
    height, width: image size in pixels (scalars, or arrays broadcastable to [...]).

  Returns:
    float64 array [..., 4] in devkit order [xmin, ymin, xmax, ymax].
  """
  boxes = np.asarray(boxes_normalized, dtype=np.float64)
  height = np.asarray(height, dtype=np.float64)
  width = np.asarray(width, dtype=np.float64)
  ymin, xmin, ymax, xmax = np.moveaxis(boxes, -1, 0)
  return np.stack([xmin * width + 1.0, ymin * height + 1.0, xmax * width, ymax * height],
                  axis=-1)


def area(boxes):
  """Areas of boxes.

  Args:
    boxes: float32 [..., 4] [ymin, xmin, ymax, xmax].

  Returns:
    float32 [...]; a box with max < min has area 0.
  """
  ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
  return tf.maximum(ymax - ymin, 0.0) * tf.maximum(xmax - xmin, 0.0)


def intersection(boxes1, boxes2):
  """Pairwise intersection areas.

  Args:
    boxes1: float32 [N, 4]; boxes2: float32 [M, 4].

  Returns:
    float32 [N, M].
  """
  ymin1, xmin1, ymax1, xmax1 = tf.split(boxes1, 4, axis=-1)  # each [N, 1]
  ymin2, xmin2, ymax2, xmax2 = tf.unstack(boxes2, axis=-1)   # each [M]
  height = tf.maximum(tf.minimum(ymax1, ymax2) - tf.maximum(ymin1, ymin2), 0.0)
  width = tf.maximum(tf.minimum(xmax1, xmax2) - tf.maximum(xmin1, xmin2), 0.0)
  return height * width


def iou(boxes1, boxes2):
  """Pairwise intersection over union.

  Args:
    boxes1: float32 [N, 4]; boxes2: float32 [M, 4], both [ymin, xmin, ymax, xmax].

  Returns:
    float32 [N, M]; 0 where the union is empty (degenerate boxes), never NaN.
  """
  inter = intersection(boxes1, boxes2)
  union = area(boxes1)[:, None] + area(boxes2)[None, :] - inter
  return tf.where(union > 0.0, inter / tf.maximum(union, 1e-12), tf.zeros_like(inter))


def clip_to_window(boxes, window=(0.0, 0.0, 1.0, 1.0)):
  """Clips boxes [..., 4] to a window (ymin, xmin, ymax, xmax); degenerate boxes stay degenerate."""
  ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
  wy0, wx0, wy1, wx1 = window
  return tf.stack([tf.clip_by_value(ymin, wy0, wy1), tf.clip_by_value(xmin, wx0, wx1),
                   tf.clip_by_value(ymax, wy0, wy1), tf.clip_by_value(xmax, wx0, wx1)], axis=-1)


def corners_to_center(boxes):
  """[..., 4] [ymin, xmin, ymax, xmax] -> (cy, cx, h, w), each [...]."""
  ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
  return (ymin + ymax) / 2.0, (xmin + xmax) / 2.0, ymax - ymin, xmax - xmin


def center_to_corners(cy, cx, h, w):
  """(cy, cx, h, w), each [...] -> [..., 4] [ymin, xmin, ymax, xmax]."""
  return tf.stack([cy - h / 2.0, cx - w / 2.0, cy + h / 2.0, cx + w / 2.0], axis=-1)


def change_coordinate_frame(boxes, window):
  """Expresses boxes in the normalized frame of ``window`` (as the OD API's box_list_ops).

  Args:
    boxes: float32 [N, 4] [ymin, xmin, ymax, xmax] in some frame.
    window: float32 [4] [ymin, xmin, ymax, xmax] in the same frame, with positive size; it may
      reach outside [0, 1].

  Returns:
    float32 [N, 4]: the window maps to [0, 0, 1, 1]. Not clipped.
  """
  ymin, xmin, ymax, xmax = tf.unstack(window)
  origin = tf.stack([ymin, xmin, ymin, xmin])
  scale = tf.stack([ymax - ymin, xmax - xmin, ymax - ymin, xmax - xmin])
  return (boxes - origin) / scale


def flip_left_right(boxes):
  """Mirrors normalized boxes [..., 4] horizontally: x -> 1 - x, so xmin and xmax swap."""
  ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
  return tf.stack([ymin, 1.0 - xmax, ymax, 1.0 - xmin], axis=-1)


def batch_normalized_to_voc_pixels(boxes_normalized, heights, widths):
  """TF version of normalized_to_voc_pixels, per image of a batch.

  The exact inverse of voc_pixels_to_normalized: xmin_px = xmin * width + 1,
  xmax_px = xmax * width, the same for y.

  Args:
    boxes_normalized: float32 [batch, num_boxes, 4] [ymin, xmin, ymax, xmax].
    heights, widths: int or float [batch], each image's size in pixels.

  Returns:
    float32 [batch, num_boxes, 4] 1-based VOC pixels [xmin, ymin, xmax, ymax].
  """
  height = tf.cast(heights, tf.float32)[:, None]
  width = tf.cast(widths, tf.float32)[:, None]
  ymin, xmin, ymax, xmax = tf.unstack(boxes_normalized, axis=-1)
  return tf.stack([xmin * width + 1.0, ymin * height + 1.0, xmax * width, ymax * height],
                  axis=-1)
