"""The SSD multibox loss (paper section 2.2, "Training objective").

    L = (L_conf + alpha * L_loc) / N

- L_conf: softmax cross-entropy over the positive anchors plus hard negatives. Per image,
  the background anchors are ranked by their confidence loss (-log p_background) and the top
  ``negative_ratio * num_positives_in_that_image`` are kept (3:1 in the paper), and at least
  ``min_negatives_per_image`` (0 in Caffe; the TF Object Detection API's SSD configs use 3).
- L_loc: smooth L1 (|x| < 1: 0.5 x^2, else |x| - 0.5) summed over the 4 offsets of the
  positive anchors.
- N: number of positive anchors in the batch (not per image), at least 1. With
  min_negatives_per_image 0 an image without positives selects no negatives, so it contributes
  nothing, and a batch without positives has L = 0 with zero gradients rather than NaN; with
  min_negatives_per_image > 0 such images contribute their hardest negatives.

Targets come from ``utility.target_assigner``: ``cls_targets`` is 0 for background, the
class label for positives and -1 for ignored anchors (neither positive nor negative).
"""

import tensorflow as tf


def smooth_l1(x):
  """Elementwise smooth L1 (Huber with delta 1): 0.5 x^2 where |x| < 1, else |x| - 0.5."""
  abs_x = tf.abs(x)
  return tf.where(abs_x < 1.0, 0.5 * tf.square(x), abs_x - 0.5)


def hard_negative_mask(negative_losses, negative_mask, num_positives_per_image, negative_ratio,
                       min_negatives_per_image=0):
  """Selects, per image, the highest-loss negatives: floor(ratio x positives), but at least
  min_negatives_per_image, and never more than the image's negatives.

  Ties are broken by anchor index (lower first) so the selection is deterministic.

  Args:
    negative_losses: float32 [batch, num_anchors], loss of predicting background.
    negative_mask: bool [batch, num_anchors], anchors that are negatives.
    num_positives_per_image: int32 [batch].
    negative_ratio: float, negatives kept per positive.
    min_negatives_per_image: int, negatives kept in an image with few or no positives.

  Returns:
    bool [batch, num_anchors], the selected negatives.
  """
  # Non-negatives are pushed below every real loss (which is >= 0) so they rank last.
  ranking_losses = tf.where(negative_mask, negative_losses, -tf.ones_like(negative_losses))
  order = tf.argsort(ranking_losses, axis=1, direction='DESCENDING', stable=True)
  rank = tf.argsort(order, axis=1, stable=True)  # rank[i, a]: position of anchor a in order
  num_negatives = tf.reduce_sum(tf.cast(negative_mask, tf.int32), axis=1)
  by_ratio = tf.cast(tf.floor(negative_ratio * tf.cast(num_positives_per_image, tf.float32)),
                     tf.int32)
  num_to_keep = tf.minimum(tf.maximum(by_ratio, min_negatives_per_image), num_negatives)
  return tf.logical_and(rank < num_to_keep[:, None], negative_mask)


def multibox_loss(class_logits, box_offsets, cls_targets, loc_targets, negative_ratio=3.0,
                  loc_weight=1.0, num_positives_normalizer=None, min_negatives_per_image=0):
  """SSD confidence + localization loss.

  Args:
    class_logits: float32 [batch, num_anchors, num_classes], index 0 is background.
    box_offsets: float32 [batch, num_anchors, 4], predicted (t_cy, t_cx, t_h, t_w).
    cls_targets: int [batch, num_anchors]; 0 background, >0 class, -1 ignored.
    loc_targets: float32 [batch, num_anchors, 4], encoded offsets (used where positive).
    negative_ratio: negatives kept per positive, per image (paper: 3).
    loc_weight: alpha, weight of the localization term (paper: 1).
    num_positives_normalizer: optional float32 scalar N to divide by instead of this batch's
      positive count (with several replicas: the positives of the global batch).
    min_negatives_per_image: hard negatives mined per image at least (hard_negative_mask).

  Returns:
    dict of float32 scalars 'classification_loss' (L_conf / N), 'localization_loss'
    (alpha * L_loc / N), and 'num_positives' (this batch's count, float32), plus
    'selected_mask' bool [batch, num_anchors] (positives and mined negatives).
  """
  cls_targets = tf.cast(cls_targets, tf.int32)
  positive_mask = cls_targets > 0
  negative_mask = tf.equal(cls_targets, 0)
  num_positives_per_image = tf.reduce_sum(tf.cast(positive_mask, tf.int32), axis=1)

  # Cross-entropy for every anchor against its target (ignored anchors use class 0 here;
  # they are masked out below). For negatives this is exactly -log p_background.
  cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=tf.maximum(cls_targets, 0), logits=class_logits)
  mined_negatives = hard_negative_mask(tf.stop_gradient(cross_entropy), negative_mask,
                                       num_positives_per_image, negative_ratio,
                                       min_negatives_per_image)
  selected = tf.logical_or(positive_mask, mined_negatives)

  positive_weights = tf.cast(positive_mask, tf.float32)
  conf_sum = tf.reduce_sum(cross_entropy * tf.cast(selected, tf.float32))
  loc_sum = tf.reduce_sum(tf.reduce_sum(smooth_l1(box_offsets - loc_targets), axis=-1)
                          * positive_weights)

  num_positives = tf.reduce_sum(positive_weights)
  normalizer = num_positives if num_positives_normalizer is None else num_positives_normalizer
  # max(N, 1): with no positives both sums are 0 and so is the loss (no 0/0).
  normalizer = tf.maximum(tf.cast(normalizer, tf.float32), 1.0)
  return {
      'classification_loss': conf_sum / normalizer,
      'localization_loss': loc_weight * loc_sum / normalizer,
      'num_positives': num_positives,
      'selected_mask': selected,
  }
