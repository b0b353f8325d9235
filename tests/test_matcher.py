import numpy as np
import pytest
import tensorflow as tf

from tests.graph_test_util import execute
from utility import matcher


def _match(iou, **kwargs):
  return execute(lambda m: matcher.match(m, **kwargs), np.array(iou, np.float32)).tolist()


def test_threshold_matches():
  # Anchor 0: best gt1 0.7 >= 0.5; anchor 1: best 0.3 -> background; anchor 2: gt0 exactly 0.5.
  # Forced: gt0's best anchor is 2 (already), gt1's is 0 (already).
  assert _match([[0.2, 0.3, 0.5], [0.7, 0.1, 0.0]]) == [1, -1, 0]


def test_gt_below_threshold_still_gets_its_best_anchor():
  assert _match([[0.1, 0.3, 0.2, 0.0]]) == [-1, 0, -1, -1]


def test_per_gt_mode_two_gts_competing_for_one_anchor_higher_iou_wins():
  # Both GTs' best anchor is 0; gt1 has the higher IoU there (0.45 > 0.4) and wins. gt0 gets
  # nothing forced: its second-best anchor 2 (0.3) stays background.
  assert _match([[0.4, 0.1, 0.3, 0.0], [0.45, 0.2, 0.0, 0.05]], bipartite='per_gt') == [
      1, -1, -1, -1]
  # Same with the rows swapped: the winner is the higher IoU, not the later row.
  assert _match([[0.45, 0.2, 0.0, 0.05], [0.4, 0.1, 0.3, 0.0]], bipartite='per_gt') == [
      0, -1, -1, -1]
  # Equal IoU: the lower row index wins.
  assert _match([[0.3, 0.1], [0.3, 0.2]], bipartite='per_gt') == [0, -1]


def test_per_gt_mode_forced_match_overrides_threshold_match_to_another_gt():
  # Thresholds give anchor 0 to gt1 (0.6 > 0.55), but anchor 0 is gt0's best anchor, and gt0
  # is its only claimant (gt1's best is anchor 1), so anchor 0 goes to gt0.
  assert _match([[0.55, 0.1], [0.6, 0.7]], bipartite='per_gt') == [0, 1]


def test_greedy_gt_that_loses_its_best_anchor_takes_its_next_best():
  # Global max 0.45 (gt1, anchor 0) first; then gt0's best free anchor is 2 (0.3).
  assert _match([[0.4, 0.1, 0.3, 0.0], [0.45, 0.2, 0.0, 0.05]]) == [1, -1, 0, -1]
  assert _match([[0.45, 0.2, 0.0, 0.05], [0.4, 0.1, 0.3, 0.0]]) == [0, -1, 1, -1]


def test_greedy_three_gts_sharing_one_best_anchor():
  iou = [[0.5, 0.2, 0.1, 0.0],    # gt0
         [0.6, 0.3, 0.0, 0.1],    # gt1
         [0.55, 0.0, 0.25, 0.2]]  # gt2
  # Passes: 0.6 (gt1, a0); then among gt0/gt2 x a1..a3: 0.25 (gt2, a2); then gt0: 0.2 (a1).
  # Anchor 3 is left to the threshold step: best 0.2 < 0.5, background.
  assert _match(iou) == [1, 0, 2, -1]
  assert _match(iou, bipartite='per_gt') == [1, -1, -1, -1]


def test_greedy_gt_smaller_than_every_anchor_still_gets_one():
  # gt0 overlaps every anchor a little (a tiny box); gt1 takes their shared best anchor 0.
  iou = [[0.02, 0.015, 0.0], [0.7, 0.1, 0.0]]
  assert _match(iou) == [1, 0, -1]
  assert _match(iou, bipartite='per_gt') == [1, -1, -1]


def test_greedy_ties_go_to_the_lowest_anchor_then_the_lowest_row():
  assert _match([[0.3, 0.3]]) == [0, -1]
  # 0.3 on anchor 0 for both rows: gt0 first, then gt1 takes anchor 1 (0.2).
  assert _match([[0.3, 0.1], [0.3, 0.2]]) == [0, 1]


def test_greedy_anchors_of_the_bipartite_step_keep_their_gt():
  # gt1 takes anchor 0 (0.7); gt0 overlaps no free anchor, so the loop ends and gt0 has none.
  # Anchor 1 then goes to gt1 by the threshold (0.55 >= 0.5).
  assert _match([[0.6, 0.0], [0.7, 0.55]]) == [1, 1]
  # Thresholds would give anchor 0 to gt1 (0.6), but the bipartite step gave it to gt0 (its
  # pair 0.55 is the largest left after gt1 took anchor 1 with 0.7).
  assert _match([[0.55, 0.1], [0.6, 0.7]]) == [0, 1]


def test_overlaps_of_1e6_or_less_do_not_count():
  assert _match([[1e-7, 0.0]]) == [-1, -1]
  assert _match([[1e-7, 0.0]], bipartite='per_gt') == [-1, -1]


def _numpy_caffe_match(iou, valid, threshold):
  """Caffe's MatchBBox (BIPARTITE, then PER_PREDICTION) on a [num_gt, num_anchors] matrix."""
  num_gt, num_anchors = iou.shape
  overlaps = {(a, g): iou[g, a] for a in range(num_anchors) for g in range(num_gt)
              if valid[g] and iou[g, a] > 1e-6}
  matches = [-1] * num_anchors
  pool = list(range(num_gt))
  while pool:
    best, best_anchor, best_gt = -1.0, -1, -1
    for a in range(num_anchors):  # Caffe scans predictions, then the GT pool, strict >
      if matches[a] != -1:
        continue
      for g in pool:
        if (a, g) in overlaps and overlaps[(a, g)] > best:
          best, best_anchor, best_gt = overlaps[(a, g)], a, g
    if best_anchor == -1:
      break
    matches[best_anchor] = best_gt
    pool.remove(best_gt)
  for a in range(num_anchors):
    if matches[a] != -1:
      continue
    best, best_gt = -1.0, -1
    for g in range(num_gt):
      if (a, g) in overlaps and overlaps[(a, g)] >= threshold and overlaps[(a, g)] > best:
        best, best_gt = overlaps[(a, g)], g
    matches[a] = best_gt
  return matches


def test_greedy_equals_a_numpy_implementation_of_caffes_loop():
  rng = np.random.RandomState(0)
  with tf.Graph().as_default():
    iou_in = tf.compat.v1.placeholder(tf.float32, [None, None])
    valid_in = tf.compat.v1.placeholder(tf.bool, [None])
    matches = matcher.match(iou_in, valid_gt_mask=valid_in)
    with tf.compat.v1.Session() as sess:
      for case in range(200):
        num_gt, num_anchors = rng.randint(0, 7), rng.randint(1, 30)
        # Sparse, quantized IoUs so that conflicts and exact ties are common.
        iou = np.round(rng.uniform(0, 1, [num_gt, num_anchors]) ** 2, 1).astype(np.float32)
        iou[rng.uniform(size=iou.shape) < 0.5] = 0.0
        valid = rng.uniform(size=num_gt) < 0.85
        got = sess.run(matches, {iou_in: iou, valid_in: valid}).tolist()
        assert got == _numpy_caffe_match(iou, valid, 0.5), (case, iou, valid)


def test_ignore_zone():
  # match 0.5, unmatched 0.4: 0.45 ignored (-2), 0.5 positive, 0.39 background, 0.9 positive.
  assert _match([[0.45, 0.5, 0.39, 0.9]], unmatched_threshold=0.4) == [-2, 0, -1, 0]
  # An ignored anchor that is a GT's best anchor is forced positive.
  assert _match([[0.45, 0.3]], unmatched_threshold=0.4) == [0, -1]


def test_zero_gt_gives_all_background():
  assert _match(np.zeros([0, 5])) == [-1] * 5
  assert _match(np.zeros([0, 5]), unmatched_threshold=0.0) == [-1] * 5


def test_zero_gt_with_unknown_static_shape():
  with tf.Graph().as_default():
    iou = tf.compat.v1.placeholder(tf.float32, [None, None])
    matches = matcher.match(iou)
    with tf.compat.v1.Session() as sess:
      assert sess.run(matches, {iou: np.zeros([0, 3])}).tolist() == [-1, -1, -1]
      assert sess.run(matches, {iou: [[0.2, 0.6, 0.1]]}).tolist() == [-1, 0, -1]


def test_padded_rows_are_ignored():
  iou = np.array([[0.6, 0.1, 0.2], [0.9, 0.95, 0.8]], np.float32)
  # Unmasked: gt1 takes anchor 1 (0.95), gt0 then anchor 0 (0.6); anchor 2 goes to gt1 (0.8).
  assert _match(iou) == [0, 1, 1]
  # gt1 masked out: only gt0 (0.6 on anchor 0) is left.
  masked = execute(lambda m, v: matcher.match(m, valid_gt_mask=v), iou, np.array([True, False]))
  assert masked.tolist() == [0, -1, -1]


def test_gt_without_overlap_claims_nothing():
  # A zero-size (or far away) GT has IoU 0 with every anchor: no forced match onto anchor 0.
  assert _match([[0.0, 0.0, 0.0], [0.1, 0.6, 0.0]]) == [-1, 1, -1]


def test_output_dtype_and_bad_thresholds():
  out = execute(lambda m: matcher.match(m), np.array([[0.6]], np.float32))
  assert out.dtype == np.int32
  with pytest.raises(ValueError, match='0 <= unmatched_threshold <= match_threshold'):
    matcher.match(np.zeros([1, 2], np.float32), match_threshold=0.4, unmatched_threshold=0.5)
  with pytest.raises(ValueError, match="bipartite matching must be one of greedy, per_gt, got "
                                       "'hungarian'"):
    matcher.match(np.zeros([1, 2], np.float32), bipartite='hungarian')
