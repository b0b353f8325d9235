"""SSD matching of anchors to ground-truth boxes (paper Sec. 2.2, "Matching strategy").

Input is the IoU matrix float32 ``[num_gt, num_anchors]``; output is, per anchor, int32:
``>= 0`` the index of its matched GT row (positive), ``UNMATCHED`` (-1, background) or
``IGNORED`` (-2, neither positive nor negative in the loss).

The rules, in order:

1. Threshold step. Each anchor takes its best valid GT (highest IoU; the lowest row index on a
   tie). IoU >= match_threshold -> that GT; else IoU >= unmatched_threshold -> IGNORED; else
   UNMATCHED. With unmatched_threshold == match_threshold (the SSD default, 0.5) nothing is
   ignored.
2. Forced (bipartite) step. Each valid GT with some overlap (best IoU > 0) claims its own best
   anchor (highest IoU; lowest anchor index on a tie), even below the thresholds. A claimed
   anchor becomes positive for the claiming GT, overriding step 1 (also when step 1 gave the
   anchor to another GT), so every GT is guaranteed an anchor unless it loses a conflict:
   when several GTs claim the same anchor, the one with the highest IoU with that anchor wins
   (lowest row index on a tie), and the losers get no forced anchor at all - they do not fall
   back to their second-best anchor (Caffe's greedy bipartite loop would; torchvision and the
   OD API also do not). A loser keeps whatever step 1 gave it. A GT that overlaps no anchor
   (e.g. a zero-size box) claims nothing.

Rows whose ``valid_gt_mask`` is False (padding) take part in neither step, and zero GT rows
give all UNMATCHED. Only TF ops, no Python control flow on tensor values: usable inside a
tf.data map with a varying number of boxes.
"""

import tensorflow as tf

UNMATCHED = -1  # background / negative
IGNORED = -2    # IoU in [unmatched_threshold, match_threshold): left out of the loss

# IoU given to padded GT rows: below any threshold (>= 0) and below every real IoU.
_INVALID_IOU = -1.0


def match(iou_matrix, match_threshold=0.5, unmatched_threshold=0.5, valid_gt_mask=None):
  """Matches anchors to GT boxes by the rules of the module docstring.

  Args:
    iou_matrix: float32 [num_gt, num_anchors], IoU of every GT box with every anchor; num_gt
      may be 0 and may be unknown statically.
    match_threshold: IoU at or above which an anchor is positive (0.5 in SSD).
    unmatched_threshold: IoU below which an anchor is background; [unmatched_threshold,
      match_threshold) is ignored.
    valid_gt_mask: optional bool [num_gt]; False rows (padding, left-out boxes) are ignored.

  Returns:
    int32 [num_anchors]: matched GT row index, UNMATCHED (-1) or IGNORED (-2).

  Raises:
    ValueError: unless 0 <= unmatched_threshold <= match_threshold.
  """
  if not 0.0 <= unmatched_threshold <= match_threshold:
    raise ValueError('Matcher thresholds need 0 <= unmatched_threshold <= match_threshold, got '
                     'unmatched %r and match %r.' % (unmatched_threshold, match_threshold))
  with tf.name_scope('match'):
    iou = tf.convert_to_tensor(iou_matrix, tf.float32)
    if valid_gt_mask is not None:
      iou = tf.where(tf.convert_to_tensor(valid_gt_mask, tf.bool)[:, None], iou, _INVALID_IOU)
    matches = _threshold_matches(iou, match_threshold, unmatched_threshold)
    return _force_best_anchors(iou, matches)


def _threshold_matches(iou, match_threshold, unmatched_threshold):
  """Step 1: int32 [num_anchors] from each anchor's best GT and the thresholds."""
  # A row of _INVALID_IOU appended so the reductions over GTs are defined when num_gt == 0;
  # it can never reach a threshold, so an anchor whose best row is this one is UNMATCHED.
  padded = tf.concat([iou, tf.fill([1, tf.shape(iou)[1]], _INVALID_IOU)], axis=0)
  best_gt = _first_argmax(padded, axis=0)
  best_iou = tf.reduce_max(padded, axis=0)
  below = tf.where(best_iou >= unmatched_threshold, IGNORED, UNMATCHED)
  return tf.where(best_iou >= match_threshold, best_gt, below)


def _force_best_anchors(iou, matches):
  """Step 2: each overlapping valid GT claims its best anchor; the highest IoU wins conflicts."""
  num_anchors = tf.shape(iou)[1]
  best_anchor = _first_argmax(iou, axis=1)  # [num_gt]
  claims = tf.logical_and(
      tf.equal(best_anchor[:, None], tf.range(num_anchors)[None, :]),  # [num_gt, num_anchors]
      (tf.reduce_max(iou, axis=1) > 0.0)[:, None])  # padded rows and no-overlap GTs claim none
  claim_iou = tf.where(claims, iou, _INVALID_IOU)  # real claims have IoU > 0 > _INVALID_IOU
  winner = _first_argmax(claim_iou, axis=0)  # [num_anchors]; meaningless where no claim
  return tf.where(tf.reduce_any(claims, axis=0), winner, matches)


def _first_argmax(values, axis):
  """int32 index of the maximum along axis (0 or 1 of a 2-D tensor), lowest index on ties.

  tf.argmax does not promise which index it returns on a tie; matching must be deterministic.
  """
  size = tf.shape(values)[axis]
  indices = tf.range(size)
  indices = indices[:, None] if axis == 0 else indices[None, :]
  is_max = values >= tf.reduce_max(values, axis=axis, keepdims=True)
  return tf.reduce_min(tf.where(is_max, indices, size), axis=axis)
