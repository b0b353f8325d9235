"""SSD box coding: boxes <-> variance-scaled offsets relative to anchors (paper Sec. 2.2).

Boxes and anchors are float32 ``[ymin, xmin, ymax, xmax]`` normalized to [0, 1]; offsets are
float32 ``[t_cy, t_cx, t_h, t_w]`` (the order of the box head's 4 outputs per anchor):

  t_cy = (gt_cy - a_cy) / a_h / 0.1      t_h = log(gt_h / a_h) / 0.2
  t_cx = (gt_cx - a_cx) / a_w / 0.1      t_w = log(gt_w / a_w) / 0.2

The "variances" (0.1, 0.1, 0.2, 0.2) are the Caffe SSD prior variances (the OD API calls their
inverses scale factors 10, 10, 5, 5).

Anchors are ``[num_anchors, 4]``; boxes and offsets are ``[..., num_anchors, 4]`` and broadcast
over any leading batch dimensions.
"""

import dataclasses
import math
from typing import Tuple

import tensorflow as tf

from utility import boxes as box_ops

DEFAULT_VARIANCES = (0.1, 0.1, 0.2, 0.2)

# encode: heights and widths are clamped to at least this (normalized units) before division and
# log, so a degenerate (zero-size) box gives large but finite offsets instead of -inf/NaN. (The
# OD API adds 1e-8 for the same reason.) Real boxes are >= 1 pixel, far above it.
MIN_SIZE = 1e-8

# decode: t_h * 0.2 and t_w * 0.2 are clipped to at most log(1000 / 16) before exp, as in
# torchvision's BoxCoder and the OD API: a box at most 62.5x its anchor, so a wild prediction
# cannot overflow exp to inf. Encoding a box larger than that ratio therefore does not round trip.
MAX_LOG_SCALE = math.log(1000.0 / 16.0)


def _check_variances(variances):
  """Returns the 4 variances as floats; ValueError unless there are 4 positive numbers."""
  variances = tuple(float(v) for v in variances)
  if len(variances) != 4 or min(variances) <= 0:
    raise ValueError('Box coder variances must be 4 positive numbers (t_cy, t_cx, t_h, t_w), got '
                     '%r; the SSD reference is (0.1, 0.1, 0.2, 0.2).' % (variances,))
  return variances


def encode(boxes, anchors, variances=DEFAULT_VARIANCES):
  """Boxes -> offsets relative to anchors.

  Args:
    boxes: float32 [..., num_anchors, 4] [ymin, xmin, ymax, xmax], e.g. the GT box matched to
      each anchor. Zero-size boxes are allowed (clamped to MIN_SIZE: finite offsets).
    anchors: float32 [num_anchors, 4] [ymin, xmin, ymax, xmax].
    variances: 4 positive floats dividing (t_cy, t_cx, t_h, t_w).

  Returns:
    float32 [..., num_anchors, 4] offsets (t_cy, t_cx, t_h, t_w).

  Raises:
    ValueError: if variances are not 4 positive numbers.
  """
  var_y, var_x, var_h, var_w = _check_variances(variances)
  with tf.name_scope('encode_boxes'):
    box_y, box_x, box_h, box_w = box_ops.corners_to_center(tf.convert_to_tensor(boxes))
    anchor_y, anchor_x, anchor_h, anchor_w = box_ops.corners_to_center(
        tf.convert_to_tensor(anchors))
    box_h, box_w = tf.maximum(box_h, MIN_SIZE), tf.maximum(box_w, MIN_SIZE)
    anchor_h, anchor_w = tf.maximum(anchor_h, MIN_SIZE), tf.maximum(anchor_w, MIN_SIZE)
    return tf.stack([(box_y - anchor_y) / anchor_h / var_y,
                     (box_x - anchor_x) / anchor_w / var_x,
                     tf.math.log(box_h / anchor_h) / var_h,
                     tf.math.log(box_w / anchor_w) / var_w], axis=-1)


def decode(offsets, anchors, variances=DEFAULT_VARIANCES):
  """Offsets relative to anchors -> boxes (the inverse of encode).

  Args:
    offsets: float32 [..., num_anchors, 4] (t_cy, t_cx, t_h, t_w), e.g. the box head output.
    anchors: float32 [num_anchors, 4] [ymin, xmin, ymax, xmax].
    variances: the 4 positive floats used to encode.

  Returns:
    float32 [..., num_anchors, 4] boxes [ymin, xmin, ymax, xmax], not clipped to [0, 1]. The
    scale terms are clipped at MAX_LOG_SCALE, so every output is finite for finite input.

  Raises:
    ValueError: if variances are not 4 positive numbers.
  """
  var_y, var_x, var_h, var_w = _check_variances(variances)
  with tf.name_scope('decode_boxes'):
    t_cy, t_cx, t_h, t_w = tf.unstack(tf.convert_to_tensor(offsets), axis=-1)
    anchor_y, anchor_x, anchor_h, anchor_w = box_ops.corners_to_center(
        tf.convert_to_tensor(anchors))
    centre_y = t_cy * var_y * anchor_h + anchor_y
    centre_x = t_cx * var_x * anchor_w + anchor_x
    height = tf.exp(tf.minimum(t_h * var_h, MAX_LOG_SCALE)) * anchor_h
    width = tf.exp(tf.minimum(t_w * var_w, MAX_LOG_SCALE)) * anchor_w
    return box_ops.center_to_corners(centre_y, centre_x, height, width)


# --- The box coder interface ------------------------------------------------------------------
# A coder is any object with ``encode(boxes, anchors)`` and ``decode(offsets, anchors)`` as
# above; ModelConfig.box_coder names one of CODERS (factories of the model settings), and
# ``register`` adds one. Training targets and detection decoding use the same coder.


@dataclasses.dataclass(frozen=True)
class CenterSizeCoder:
  """SSD's (and Faster R-CNN's) centre-size offsets scaled by the prior variances."""
  variances: Tuple[float, ...] = DEFAULT_VARIANCES

  def encode(self, boxes, anchors):
    return encode(boxes, anchors, self.variances)

  def decode(self, offsets, anchors):
    return decode(offsets, anchors, self.variances)


CODERS = {'center_size': lambda model_config: CenterSizeCoder(tuple(model_config.prior_variances))}


def register(name, factory):
  """Adds a box coder: factory(model_config) -> object with encode and decode."""
  CODERS[name] = factory
  return factory


def from_config(model_config):
  """The coder the settings name (--box_coder); ValueError listing the known ones."""
  if model_config.box_coder not in CODERS:
    raise ValueError('Unknown --box_coder %r: use one of %s.'
                     % (model_config.box_coder, ', '.join(sorted(CODERS))))
  return CODERS[model_config.box_coder](model_config)
