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


def test_two_gts_competing_for_one_anchor_higher_iou_wins():
  # Both GTs' best anchor is 0; gt1 has the higher IoU there (0.45 > 0.4) and wins. gt0 gets
  # nothing forced: its second-best anchor 2 (0.3) stays background.
  assert _match([[0.4, 0.1, 0.3, 0.0], [0.45, 0.2, 0.0, 0.05]]) == [1, -1, -1, -1]
  # Same with the rows swapped: the winner is the higher IoU, not the later row.
  assert _match([[0.45, 0.2, 0.0, 0.05], [0.4, 0.1, 0.3, 0.0]]) == [0, -1, -1, -1]
  # Equal IoU: the lower row index wins.
  assert _match([[0.3, 0.1], [0.3, 0.2]]) == [0, -1]


def test_forced_match_overrides_threshold_match_to_another_gt():
  # Thresholds give anchor 0 to gt1 (0.6 > 0.55), but anchor 0 is gt0's best anchor, and gt0
  # is its only claimant (gt1's best is anchor 1), so anchor 0 goes to gt0.
  assert _match([[0.55, 0.1], [0.6, 0.7]]) == [0, 1]


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
  # Unmasked: gt1 wins all three by threshold, then gt0 claims its best anchor 0.
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
