"""SSD matching of anchors to ground-truth boxes (paper 2.2 "Matching strategy"; Caffe
``MatchBBox`` in bbox_util.cpp with ``match_type: PER_PREDICTION``).

Input is the IoU matrix float32 ``[num_gt, num_anchors]``; output is, per anchor, int32:
``>= 0`` the index of its matched GT row (positive), ``UNMATCHED`` (-1, background) or
``IGNORED`` (-2, neither positive nor negative in the loss). Only IoU > 1e-6 counts as an
overlap (Caffe's guard).

1. Bipartite step, ``bipartite='greedy'`` (Caffe, the default): repeat until every GT has an
   anchor: take the largest IoU over (unassigned anchors x unassigned GTs), give that anchor
   to that GT, remove both. A GT whose best anchor went to another GT gets its next best one,
   so every GT that overlaps some anchor ends with one, even below the thresholds. Ties go as
   Caffe's scan finds them: the lowest anchor index, then the lowest GT row.
   ``bipartite='per_gt'`` (this project before it followed Caffe; torchvision and the TF Object
   Detection API do the same): each GT claims its own best anchor; when several claim one
   anchor the highest IoU wins (lowest row on a tie) and the losers get no forced anchor.
2. Per prediction: every anchor the bipartite step left unassigned takes its best GT (highest
   IoU; the lowest row on a tie): IoU >= match_threshold -> that GT; else IoU >=
   unmatched_threshold -> IGNORED; else UNMATCHED. With unmatched_threshold == match_threshold
   (the SSD default, 0.5) nothing is ignored.

Rows whose ``valid_gt_mask`` is False (padding) take part in neither step, and zero GT rows
give all UNMATCHED. Only TF ops (a tf.while_loop for the greedy step, one pass per GT): usable
inside a tf.data map with a varying number of boxes.
"""

import dataclasses

import tensorflow as tf

UNMATCHED = -1  # background / negative
IGNORED = -2    # IoU in [unmatched_threshold, match_threshold): left out of the loss

BIPARTITE_MODES = ('greedy', 'per_gt')

# IoU given to padded GT rows: below any threshold (>= 0) and below every real IoU.
_INVALID_IOU = -1.0
# Caffe counts a pair as overlapping only above this IoU.
MIN_OVERLAP = 1e-6


def match(iou_matrix, match_threshold=0.5, unmatched_threshold=0.5, valid_gt_mask=None,
          bipartite='greedy'):
  """Matches anchors to GT boxes by the rules of the module docstring.

  Args:
    iou_matrix: float32 [num_gt, num_anchors], IoU of every GT box with every anchor; num_gt
      may be 0 and may be unknown statically.
    match_threshold: IoU at or above which an anchor is positive (0.5 in SSD).
    unmatched_threshold: IoU below which an anchor is background; [unmatched_threshold,
      match_threshold) is ignored.
    valid_gt_mask: optional bool [num_gt]; False rows (padding, left-out boxes) are ignored.
    bipartite: 'greedy' (Caffe) or 'per_gt' (module docstring).

  Returns:
    int32 [num_anchors]: matched GT row index, UNMATCHED (-1) or IGNORED (-2).

  Raises:
    ValueError: unless 0 <= unmatched_threshold <= match_threshold, or for an unknown
      bipartite mode.
  """
  if not 0.0 <= unmatched_threshold <= match_threshold:
    raise ValueError('Matcher thresholds need 0 <= unmatched_threshold <= match_threshold, got '
                     'unmatched %r and match %r.' % (unmatched_threshold, match_threshold))
  if bipartite not in BIPARTITE_MODES:
    raise ValueError('bipartite matching must be one of %s, got %r.'
                     % (', '.join(BIPARTITE_MODES), bipartite))
  with tf.name_scope('match'):
    iou = tf.convert_to_tensor(iou_matrix, tf.float32)
    valid = iou > MIN_OVERLAP
    if valid_gt_mask is not None:
      valid = tf.logical_and(valid, tf.convert_to_tensor(valid_gt_mask, tf.bool)[:, None])
    iou = tf.where(valid, iou, _INVALID_IOU)
    matches = _threshold_matches(iou, match_threshold, unmatched_threshold)
    if bipartite == 'per_gt':
      return _force_best_anchors(iou, matches)
    assigned = _greedy_bipartite(iou)
    return tf.where(assigned >= 0, assigned, matches)


def _threshold_matches(iou, match_threshold, unmatched_threshold):
  """Step 2: int32 [num_anchors] from each anchor's best GT and the thresholds."""
  # A row of _INVALID_IOU appended so the reductions over GTs are defined when num_gt == 0;
  # it can never reach a threshold, so an anchor whose best row is this one is UNMATCHED.
  padded = tf.concat([iou, tf.fill([1, tf.shape(iou)[1]], _INVALID_IOU)], axis=0)
  best_gt = _first_argmax(padded, axis=0)
  best_iou = tf.reduce_max(padded, axis=0)
  below = tf.where(best_iou >= unmatched_threshold, IGNORED, UNMATCHED)
  return tf.where(best_iou >= match_threshold, best_gt, below)


def _force_best_anchors(iou, matches):
  """Step 1 'per_gt': each overlapping GT claims its best anchor; the highest IoU wins."""
  num_anchors = tf.shape(iou)[1]
  best_anchor = _first_argmax(iou, axis=1)  # [num_gt]
  claims = tf.logical_and(
      tf.equal(best_anchor[:, None], tf.range(num_anchors)[None, :]),  # [num_gt, num_anchors]
      (tf.reduce_max(iou, axis=1) > 0.0)[:, None])  # padded rows and no-overlap GTs claim none
  claim_iou = tf.where(claims, iou, _INVALID_IOU)  # real claims have IoU > 0 > _INVALID_IOU
  winner = _first_argmax(claim_iou, axis=0)  # [num_anchors]; meaningless where no claim
  return tf.where(tf.reduce_any(claims, axis=0), winner, matches)


def _greedy_bipartite(iou):
  """Step 1, Caffe's loop: int32 [num_anchors], the GT row given to each anchor or -1.

  Each pass takes the largest remaining IoU (lowest anchor, then lowest row on a tie), gives
  that anchor to that GT and removes both; it stops when no unassigned GT overlaps an
  unassigned anchor. At most one pass per GT that overlaps anything.
  """
  num_gt, num_anchors = tf.shape(iou)[0], tf.shape(iou)[1]
  overlapping = iou > MIN_OVERLAP  # padded rows and non-overlaps are _INVALID_IOU
  max_passes = tf.reduce_sum(tf.cast(tf.reduce_any(overlapping, axis=1), tf.int32))
  anchor_ids, gt_ids = tf.range(num_anchors), tf.range(num_gt)

  def one_pass(step, gt_free, anchor_free, assigned, _):
    free = tf.logical_and(gt_free[:, None], anchor_free[None, :])
    candidates = tf.where(tf.logical_and(free, overlapping), iou, _INVALID_IOU)
    best = tf.reduce_max(tf.concat([tf.reshape(candidates, [-1]), [_INVALID_IOU]], 0))
    found = best > MIN_OVERLAP
    is_best = tf.logical_and(candidates >= best, found)
    anchor = tf.reduce_min(tf.where(tf.reduce_any(is_best, axis=0), anchor_ids, num_anchors))
    anchor_column = tf.gather(is_best, tf.minimum(anchor, num_anchors - 1), axis=1)
    gt = tf.reduce_min(tf.where(anchor_column, gt_ids, num_gt))
    take_anchor = tf.logical_and(found, tf.equal(anchor_ids, anchor))
    take_gt = tf.logical_and(found, tf.equal(gt_ids, gt))
    return (step + 1, tf.logical_and(gt_free, tf.logical_not(take_gt)),
            tf.logical_and(anchor_free, tf.logical_not(take_anchor)),
            tf.where(take_anchor, gt, assigned), found)

  _, _, _, assigned, _ = tf.while_loop(
      lambda step, gt_free, anchor_free, assigned, found: tf.logical_and(step < max_passes,
                                                                         found),
      one_pass,
      (tf.constant(0), tf.ones([num_gt], tf.bool), tf.ones([num_anchors], tf.bool),
       tf.fill([num_anchors], -1), tf.constant(True)))
  return assigned


def _first_argmax(values, axis):
  """int32 index of the maximum along axis (0 or 1 of a 2-D tensor), lowest index on ties.

  tf.argmax does not promise which index it returns on a tie; matching must be deterministic.
  """
  size = tf.shape(values)[axis]
  indices = tf.range(size)
  indices = indices[:, None] if axis == 0 else indices[None, :]
  is_max = values >= tf.reduce_max(values, axis=axis, keepdims=True)
  return tf.reduce_min(tf.where(is_max, indices, size), axis=axis)


# --- The matcher interface --------------------------------------------------------------------
# A matcher is any object with ``match(similarity, valid_gt_mask=None) -> int32 [num_anchors]``
# (GT row >= 0, UNMATCHED or IGNORED) for a similarity float32 [num_gt, num_anchors]. The
# settings choose one by name (ModelConfig.matcher): MATCHERS maps the name to a factory of the
# model settings; ``register`` adds one (a user's module or a test) without editing this file.


@dataclasses.dataclass(frozen=True)
class SsdMatcher:
  """The SSD rule of the module docstring (bipartite step, then thresholds per prediction)."""
  match_threshold: float = 0.5
  unmatched_threshold: float = 0.5
  bipartite: str = 'greedy'

  def match(self, similarity, valid_gt_mask=None):
    return match(similarity, self.match_threshold, self.unmatched_threshold, valid_gt_mask,
                 self.bipartite)


MATCHERS = {
    'ssd': lambda model_config: SsdMatcher(model_config.match_threshold,
                                           model_config.neg_threshold,
                                           model_config.bipartite_matching),
}


def register(name, factory):
  """Adds a matcher: factory(model_config) -> object with match(similarity, valid_gt_mask)."""
  MATCHERS[name] = factory
  return factory


def from_config(model_config):
  """The matcher the settings name (--matcher), built from them.

  Raises:
    ValueError: for an unknown name, listing the known ones.
  """
  if model_config.matcher not in MATCHERS:
    raise ValueError('Unknown --matcher %r: use one of %s.'
                     % (model_config.matcher, ', '.join(sorted(MATCHERS))))
  return MATCHERS[model_config.matcher](model_config)
