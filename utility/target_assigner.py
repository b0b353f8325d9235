"""Per-anchor training targets from ground-truth boxes: similarity -> matching -> encoding.

A ``TargetAssigner`` composes three swappable parts: a similarity (``utility/boxes.iou``), a
matcher (``utility/matcher``: SsdMatcher by default) and a box coder (``utility/box_coder``:
CenterSizeCoder); ``from_config`` builds the one the settings name (--matcher, --box_coder,
docs/RECIPE.md "Matching and encoding"). The input pipeline receives it ready made
(``utility.model_inputs.ModelInputs``), so it knows no threshold or rule itself. Boxes are float32 ``[ymin, xmin, ymax, xmax]`` normalized;
class label 0 is the background (``utility/labels.py``).

GT lists are padded: rows at index >= ``num_valid`` (and rows whose optional ``gt_valid_mask``
is False) are ignored. Zero valid boxes give all-background targets and no NaN.
"""

import dataclasses
from typing import Any, Callable

import tensorflow as tf

from utility import box_coder
from utility import boxes as box_ops
from utility import matcher

IGNORE_LABEL = -1  # cls_targets value of ignored anchors (left out of the confidence loss)


@dataclasses.dataclass(frozen=True)
class TargetAssigner:
  """similarity(gt_boxes, anchors) -> matcher.match -> coder.encode.

  Attributes:
    matcher: object with match(similarity [num_gt, num_anchors], valid_gt_mask) -> int32
      [num_anchors] (utility.matcher interface).
    coder: object with encode(boxes, anchors) and decode(offsets, anchors).
    similarity: function(boxes [N, 4], anchors [M, 4]) -> float32 [N, M]; IoU by default.
  """
  matcher: Any
  coder: Any
  similarity: Callable = box_ops.iou

  def assign(self, anchors, gt_boxes, gt_labels, num_valid=None, gt_valid_mask=None):
    """Targets for one image: the dict of assign_targets (same arguments)."""
    with tf.name_scope('assign_targets'):
      anchors = tf.convert_to_tensor(anchors, tf.float32)
      gt_boxes = tf.convert_to_tensor(gt_boxes, tf.float32)
      gt_labels = tf.cast(gt_labels, tf.int64)
      valid = _valid_rows(tf.shape(gt_boxes)[0], num_valid, gt_valid_mask)
      similarity = self.similarity(gt_boxes, anchors)  # [num_gt, num_anchors]
      matches = self.matcher.match(similarity, valid)
      return _targets(anchors, gt_boxes, gt_labels, similarity, matches, self.coder)


def from_config(model_config):
  """The TargetAssigner of a ModelConfig (--matcher, --box_coder and their settings)."""
  return TargetAssigner(matcher=matcher.from_config(model_config),
                        coder=box_coder.from_config(model_config))


def assign_targets(anchors, gt_boxes, gt_labels, match_threshold=0.5, unmatched_threshold=0.5,
                   variances=box_coder.DEFAULT_VARIANCES, num_valid=None, gt_valid_mask=None,
                   bipartite='greedy'):
  """Targets for one image with the SSD matcher and coder.

  Args:
    anchors: float32 [num_anchors, 4].
    gt_boxes: float32 [num_gt, 4], possibly padded; num_gt may be 0 or unknown statically.
    gt_labels: int32/int64 [num_gt], class labels 1..num_classes - 1.
    match_threshold, unmatched_threshold: see ``matcher.match`` (SSD: 0.5 and 0.5).
    variances: box coder variances (SSD: 0.1, 0.1, 0.2, 0.2).
    num_valid: optional int scalar (Python or tensor); rows >= num_valid are padding.
    gt_valid_mask: optional bool [num_gt]; False rows are left out of matching (e.g. the
      mask from ``non_difficult_mask``). Combined with num_valid by AND.
    bipartite: ``matcher.match``'s bipartite step, 'greedy' (Caffe) or 'per_gt'.

  Returns:
    A dict:
      cls_targets: int64 [num_anchors]; 0 background, the matched GT's label for positives,
        -1 (IGNORE_LABEL) for ignored anchors.
      loc_targets: float32 [num_anchors, 4] encoded (t_cy, t_cx, t_h, t_w) of the matched GT
        box; zeros where the anchor is not positive.
      match_iou: float32 [num_anchors], IoU with the matched GT; 0 where not positive.
      num_positives: int32 scalar, number of positive anchors.
  """
  assigner = TargetAssigner(
      matcher=matcher.SsdMatcher(match_threshold, unmatched_threshold, bipartite),
      coder=box_coder.CenterSizeCoder(tuple(variances)))
  return assigner.assign(anchors, gt_boxes, gt_labels, num_valid, gt_valid_mask)


def _targets(anchors, gt_boxes, gt_labels, iou, matches, coder):
  """The target dict from the matches (see assign_targets)."""
  positive = matches >= 0
  # Gather through one extra dummy row (index num_gt), so non-positive anchors and images
  # with no boxes never index out of range; their values are masked out below.
  num_gt = tf.shape(gt_boxes)[0]
  rows = tf.where(positive, matches, num_gt)
  dummy_box = tf.constant([[0.0, 0.0, 1.0, 1.0]])
  matched_boxes = tf.gather(tf.concat([gt_boxes, dummy_box], 0), rows)
  matched_labels = tf.gather(tf.concat([gt_labels, tf.zeros([1], tf.int64)], 0), rows)
  padded_iou = tf.concat([iou, tf.zeros([1, tf.shape(anchors)[0]])], 0)
  matched_iou = tf.gather_nd(padded_iou,
                             tf.stack([rows, tf.range(tf.shape(anchors)[0])], axis=1))
  ignored = tf.equal(matches, matcher.IGNORED)  # not ==: in graph mode that is identity
  background = tf.where(ignored, tf.constant(IGNORE_LABEL, tf.int64), tf.constant(0, tf.int64))
  loc_targets = coder.encode(matched_boxes, anchors)
  return {
      'cls_targets': tf.where(positive, matched_labels, background),
      'loc_targets': tf.where(positive[:, None], loc_targets, 0.0),
      'match_iou': tf.where(positive, matched_iou, 0.0),
      'num_positives': tf.reduce_sum(tf.cast(positive, tf.int32)),
  }


def _valid_rows(num_gt, num_valid, gt_valid_mask):
  """bool [num_gt]: rows below num_valid AND gt_valid_mask (each optional)."""
  valid = tf.ones([num_gt], tf.bool)
  if num_valid is not None:
    valid = tf.range(num_gt) < tf.cast(num_valid, tf.int32)
  if gt_valid_mask is not None:
    valid = tf.logical_and(valid, tf.convert_to_tensor(gt_valid_mask, tf.bool))
  return valid


def non_difficult_mask(gt_difficult, num_valid=None):
  """Which GT rows to match in training (docs/RECIPE.md: difficult objects are left out by default).

  An image whose valid objects are all difficult keeps them all, rather than becoming an
  all-background image.

  Args:
    gt_difficult: int or bool [num_gt], nonzero for difficult objects.
    num_valid: optional int scalar; rows >= num_valid are padding and never selected.

  Returns:
    bool [num_gt].
  """
  with tf.name_scope('non_difficult_mask'):
    difficult = tf.cast(gt_difficult, tf.bool)
    valid = _valid_rows(tf.shape(difficult)[0], num_valid, None)
    easy = tf.logical_and(valid, tf.logical_not(difficult))
    return tf.where(tf.reduce_any(easy), easy, valid)


def batch_assign_targets(anchors, gt_boxes, gt_labels, num_gt, match_threshold=0.5,
                         unmatched_threshold=0.5, variances=box_coder.DEFAULT_VARIANCES,
                         gt_valid_mask=None, bipartite='greedy'):
  """assign_targets for a batch of padded GT lists (tf.map_fn over images).

  Args:
    anchors: float32 [num_anchors, 4], shared by all images.
    gt_boxes: float32 [batch, max_num_gt, 4], padded.
    gt_labels: int32/int64 [batch, max_num_gt], padded.
    num_gt: int [batch], number of real rows per image.
    match_threshold, unmatched_threshold, variances, bipartite: as in assign_targets.
    gt_valid_mask: optional bool [batch, max_num_gt], as in assign_targets.

  Returns:
    The dict of assign_targets with a leading batch dim: cls_targets int64 [batch, num_anchors],
    loc_targets float32 [batch, num_anchors, 4], match_iou float32 [batch, num_anchors],
    num_positives int32 [batch].
  """
  with tf.name_scope('batch_assign_targets'):
    gt_boxes = tf.convert_to_tensor(gt_boxes, tf.float32)
    gt_labels = tf.cast(gt_labels, tf.int64)
    num_gt = tf.cast(num_gt, tf.int32)
    if gt_valid_mask is None:
      gt_valid_mask = tf.ones(tf.shape(gt_labels), tf.bool)

    def assign_one(elements):
      boxes_per_image, labels_per_image, num_per_image, mask_per_image = elements
      return assign_targets(anchors, boxes_per_image, labels_per_image, match_threshold,
                            unmatched_threshold, variances, num_per_image, mask_per_image,
                            bipartite)

    anchors = tf.convert_to_tensor(anchors, tf.float32)
    num_anchors = anchors.shape[0]  # static when known, so the outputs keep it
    signature = {
        'cls_targets': tf.TensorSpec([num_anchors], tf.int64),
        'loc_targets': tf.TensorSpec([num_anchors, 4], tf.float32),
        'match_iou': tf.TensorSpec([num_anchors], tf.float32),
        'num_positives': tf.TensorSpec([], tf.int32),
    }
    # Graph ops only: skip AutoGraph's source rewriting of the matcher and coder.
    return tf.map_fn(tf.autograph.experimental.do_not_convert(assign_one),
                     (gt_boxes, gt_labels, num_gt, gt_valid_mask), fn_output_signature=signature)
