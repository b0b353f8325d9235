import math

import numpy as np
import pytest
import tensorflow as tf

from tests.graph_test_util import execute
from utility import matcher
from utility import target_assigner

VARIANCES = np.array([0.1, 0.1, 0.2, 0.2])

# Four anchors on a unit image.
ANCHORS = np.array([[0.0, 0.0, 0.5, 0.5],     # a0, top-left quarter
                    [0.5, 0.5, 1.0, 1.0],     # a1, bottom-right quarter
                    [0.0, 0.5, 0.5, 1.0],     # a2, top-right quarter
                    [0.25, 0.25, 0.75, 0.75]],  # a3, centre
                   np.float32)
# g0 (label 3): IoU with a0 = 0.2 / 0.25 = 0.8; with a3 = 0.0375 / 0.4125 = 0.0909.
# g1 (label 7): IoU with a1 = 0.09 / 0.25 = 0.36 < 0.5 but a1 is its best anchor (forced);
#   with a3 = 0.0225 / 0.3175 = 0.0709. a2 overlaps neither.
GT_BOXES = np.array([[0.0, 0.0, 0.5, 0.4], [0.6, 0.6, 0.9, 0.9]], np.float32)
GT_LABELS = np.array([3, 7], np.int32)
# a0 (cy .25, cx .25, h .5, w .5) vs g0 (.25, .2, .5, .4): (0, -0.05 / 0.5 / 0.1, 0, log .8 / .2).
# a1 (.75, .75, .5, .5) vs g1 (.75, .75, .3, .3): (0, 0, log .6 / .2, log .6 / .2).
EXPECTED_LOC = [[0.0, -1.0, 0.0, math.log(0.8) / 0.2],
                [0.0, 0.0, math.log(0.6) / 0.2, math.log(0.6) / 0.2],
                [0.0] * 4,
                [0.0] * 4]


def _assign(anchors, boxes, labels, **kwargs):
  return execute(lambda a, b, l: target_assigner.assign_targets(a, b, l, **kwargs),
                 anchors, boxes, labels)


def _iou_numpy(boxes1, boxes2):
  b1, b2 = boxes1[:, None, :].astype(np.float64), boxes2[None, :, :].astype(np.float64)
  inter = (np.clip(np.minimum(b1[..., 2], b2[..., 2]) - np.maximum(b1[..., 0], b2[..., 0]), 0, None)
           * np.clip(np.minimum(b1[..., 3], b2[..., 3]) - np.maximum(b1[..., 1], b2[..., 1]), 0,
                     None))
  area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
  area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
  return inter / (area1 + area2 - inter)


def _reference_assign(anchors, boxes, labels, match_threshold=0.5, unmatched_threshold=0.5):
  """Loop-by-loop numpy version of the rules in utility/matcher.py plus SSD encoding."""
  num_anchors = len(anchors)
  cls = np.zeros(num_anchors, np.int64)
  loc = np.zeros([num_anchors, 4])
  matched = np.full(num_anchors, -1)
  iou = _iou_numpy(boxes, anchors) if len(boxes) else np.zeros([0, num_anchors])
  for a in range(num_anchors):
    if len(boxes) and iou[:, a].max() >= match_threshold:
      matched[a] = int(np.argmax(iou[:, a]))
    elif len(boxes) and iou[:, a].max() >= unmatched_threshold:
      cls[a] = -1
  claims = {}
  for g in range(len(boxes)):
    best = int(np.argmax(iou[g]))
    if iou[g, best] > 0 and (best not in claims or iou[g, best] > iou[claims[best], best]):
      claims[best] = g
  for a, g in claims.items():
    matched[a] = g
  for a in np.nonzero(matched >= 0)[0]:
    g = matched[a]
    cls[a] = labels[g]
    gy, gx = (boxes[g, 0] + boxes[g, 2]) / 2, (boxes[g, 1] + boxes[g, 3]) / 2
    gh, gw = boxes[g, 2] - boxes[g, 0], boxes[g, 3] - boxes[g, 1]
    ay, ax = (anchors[a, 0] + anchors[a, 2]) / 2, (anchors[a, 1] + anchors[a, 3]) / 2
    ah, aw = anchors[a, 2] - anchors[a, 0], anchors[a, 3] - anchors[a, 1]
    raw = [(gy - ay) / ah, (gx - ax) / aw, np.log(gh / ah), np.log(gw / aw)]
    loc[a] = np.array(raw) / VARIANCES
  return cls, loc, (matched >= 0).sum()


def test_hand_made_targets():
  out = _assign(ANCHORS, GT_BOXES, GT_LABELS)
  assert out['cls_targets'].dtype == np.int64
  assert out['cls_targets'].tolist() == [3, 7, 0, 0]
  np.testing.assert_allclose(out['loc_targets'], EXPECTED_LOC, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out['match_iou'], [0.8, 0.36, 0.0, 0.0], rtol=1e-5)
  assert out['num_positives'] == 2
  cls, loc, num_positives = _reference_assign(ANCHORS, GT_BOXES, GT_LABELS)
  assert out['cls_targets'].tolist() == cls.tolist() and num_positives == 2
  np.testing.assert_allclose(out['loc_targets'], loc, rtol=1e-5, atol=1e-6)


def test_ignored_anchor_gets_minus_one():
  # unmatched 0.08: a3's best IoU 0.0909 (g0) is in [0.08, 0.5) -> ignored, loc zeros.
  out = _assign(ANCHORS, GT_BOXES, GT_LABELS, unmatched_threshold=0.08)
  assert out['cls_targets'].tolist() == [3, 7, 0, -1]
  np.testing.assert_allclose(out['loc_targets'][3], [0, 0, 0, 0])
  assert out['match_iou'][3] == 0.0


def test_padded_rows_are_ignored():
  # A third row that would take a2 (IoU 1) and a label 9, beyond num_valid=2: no effect.
  boxes = np.concatenate([GT_BOXES, [[0.0, 0.5, 0.5, 1.0]]]).astype(np.float32)
  labels = np.array([3, 7, 9], np.int32)
  out = _assign(ANCHORS, boxes, labels, num_valid=2)
  assert out['cls_targets'].tolist() == [3, 7, 0, 0]
  np.testing.assert_allclose(out['loc_targets'], EXPECTED_LOC, rtol=1e-5, atol=1e-6)
  masked = _assign(ANCHORS, boxes, labels, gt_valid_mask=np.array([True, False, True]))
  assert masked['cls_targets'].tolist() == [3, 0, 9, 0]  # g1 left out, a1 now background


def test_zero_boxes_all_background_no_nan():
  for boxes, labels, kwargs in [(np.zeros([0, 4], np.float32), np.zeros([0], np.int32), {}),
                                (np.zeros([3, 4], np.float32), np.zeros([3], np.int32),
                                 {'num_valid': 0})]:
    out = _assign(ANCHORS, boxes, labels, **kwargs)
    assert out['cls_targets'].tolist() == [0, 0, 0, 0]
    assert out['num_positives'] == 0
    np.testing.assert_array_equal(out['loc_targets'], np.zeros([4, 4]))
    np.testing.assert_array_equal(out['match_iou'], np.zeros([4]))


def test_random_case_matches_numpy_reference():
  rng = np.random.RandomState(3)
  corner = rng.uniform(0, 0.7, [200, 2])
  anchors = np.concatenate([corner, corner + rng.uniform(0.1, 0.3, [200, 2])], 1)
  corner = rng.uniform(0, 0.7, [6, 2])
  boxes = np.concatenate([corner, corner + rng.uniform(0.05, 0.3, [6, 2])], 1)
  anchors, boxes = anchors.astype(np.float32), boxes.astype(np.float32)
  labels = rng.randint(1, 21, [6]).astype(np.int32)
  out = _assign(anchors, boxes, labels, unmatched_threshold=0.4)
  cls, loc, num_positives = _reference_assign(anchors, boxes, labels, unmatched_threshold=0.4)
  assert out['cls_targets'].tolist() == cls.tolist()
  assert out['num_positives'] == num_positives > 6  # threshold matches beyond the forced ones
  assert (cls == -1).any()
  np.testing.assert_allclose(out['loc_targets'], loc, rtol=1e-4, atol=1e-4)


def test_batched_equals_per_image():
  boxes = np.zeros([3, 3, 4], np.float32)
  labels = np.zeros([3, 3], np.int32)
  boxes[0, :2], labels[0, :2] = GT_BOXES, GT_LABELS                      # 2 boxes
  boxes[1, :3], labels[1, :3] = [[0.0, 0.5, 0.5, 1.0], [0.1, 0.1, 0.2, 0.2],
                                 [0.3, 0.3, 0.8, 0.7]], [9, 2, 5]        # 3 boxes
  num_gt = np.array([2, 3, 0], np.int32)                                  # image 2: none
  batched = execute(
      lambda a, b, l, n: target_assigner.batch_assign_targets(a, b, l, n,
                                                              unmatched_threshold=0.3),
      ANCHORS, boxes, labels, num_gt)
  assert batched['cls_targets'].shape == (3, 4) and batched['loc_targets'].shape == (3, 4, 4)
  for image in range(3):
    single = _assign(ANCHORS, boxes[image, :num_gt[image]], labels[image, :num_gt[image]],
                     unmatched_threshold=0.3)
    for key in ('cls_targets', 'loc_targets', 'match_iou', 'num_positives'):
      np.testing.assert_array_equal(batched[key][image], single[key])
  assert batched['cls_targets'][2].tolist() == [0, 0, 0, 0]
  assert batched['num_positives'].tolist() == [2, 3, 0]


def test_inside_tf_data_map_with_varying_box_counts():
  def boxes_of(count):
    return GT_BOXES[:count], GT_LABELS[:count]
  with tf.Graph().as_default():
    dataset = tf.data.Dataset.range(3).map(
        lambda i: tf.numpy_function(lambda c: boxes_of(int(c)), [i], [tf.float32, tf.int32]))
    dataset = dataset.map(lambda b, l: target_assigner.assign_targets(
        ANCHORS, tf.reshape(b, [-1, 4]), l)['cls_targets'])
    next_cls = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
    with tf.compat.v1.Session() as sess:
      assert [sess.run(next_cls).tolist() for _ in range(3)] == [
          [0, 0, 0, 0], [3, 0, 0, 0], [3, 7, 0, 0]]


def test_non_difficult_mask():
  mask = execute(lambda d: target_assigner.non_difficult_mask(d, num_valid=3),
                 np.array([0, 1, 0, 0], np.int64))
  assert mask.tolist() == [True, False, True, False]  # row 3 is padding
  # All valid objects difficult: keep them (not an all-background image).
  mask = execute(lambda d: target_assigner.non_difficult_mask(d, num_valid=2),
                 np.array([1, 1, 0], np.int64))
  assert mask.tolist() == [True, True, False]


def test_small_gt_that_loses_its_best_default_box_still_gets_a_positive():
  # Default boxes A0 = [0, 0, .5, .5], A1 = [0, 0, .4, .4], A2 = [.5, .5, 1, 1]. The big GT
  # [0, 0, .5, .48] has IoU .96 with A0 and .16 / .24 = .667 with A1; the small GT
  # [.1, .1, .45, .45] (area .1225) has .1225 / .25 = .49 with A0 and .09 / .1925 = .4675
  # with A1. Both have A0 as their best box; the big one wins it.
  anchors = np.array([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.4, 0.4], [0.5, 0.5, 1.0, 1.0]],
                     np.float32)
  boxes = np.array([[0.0, 0.0, 0.5, 0.48], [0.1, 0.1, 0.45, 0.45]], np.float32)
  labels = np.array([9, 4], np.int32)
  np.testing.assert_allclose(_iou_numpy(boxes, anchors),
                             [[0.96, 0.16 / 0.24, 0.0], [0.49, 0.09 / 0.1925, 0.0]], rtol=1e-6)
  # Caffe's greedy bipartite step: A0 -> big, then the small GT takes its next best, A1.
  greedy = _assign(anchors, boxes, labels)
  assert greedy['cls_targets'].tolist() == [9, 4, 0]
  np.testing.assert_allclose(greedy['match_iou'][:2], [0.96, 0.09 / 0.1925], rtol=1e-5)
  # The per_gt rule: A0 is forced to the big GT, A1 takes its best GT by threshold (big, .667),
  # so the small GT has no positive at all.
  per_gt = _assign(anchors, boxes, labels, bipartite='per_gt')
  assert per_gt['cls_targets'].tolist() == [9, 9, 0]


class _ArgmaxOnlyMatcher:
  """A contributor's matcher (no bipartite step): an anchor is positive iff its best IoU >= t."""

  def __init__(self, threshold):
    self.threshold = threshold

  def match(self, similarity, valid_gt_mask=None):
    similarity = tf.where(valid_gt_mask[:, None], similarity, -1.0)
    best = tf.argmax(similarity, axis=0, output_type=tf.int32)
    return tf.where(tf.reduce_max(similarity, axis=0) >= self.threshold, best,
                    matcher.UNMATCHED)


def test_a_matcher_registered_in_a_test_is_chosen_by_the_settings():
  from net import model_spec
  from utility import config as config_lib
  matcher.register('test_argmax_only', lambda model: _ArgmaxOnlyMatcher(model.match_threshold))
  anchors = np.array([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]], np.float32)
  # IoU with anchor 0 is 0.09 / 0.25 = 0.36: the SSD matcher forces it (bipartite step), the
  # argmax-only matcher leaves the GT unmatched.
  gt = np.array([[0.0, 0.0, 0.3, 0.3]], np.float32)
  targets = {}
  for name in ('ssd', 'test_argmax_only'):
    config = config_lib.ModelConfig(matcher=name, architecture='ssd_quick', image_size=160,
                                    anchor_min_scale=0.1, anchor_max_scale=0.9)
    assigner = model_spec.model_inputs(config).assigner
    targets[name] = execute(lambda a, b, l: assigner.assign(a, b, l), anchors, gt,
                            np.array([3], np.int64))
  np.testing.assert_array_equal(targets['ssd']['cls_targets'], [3, 0])
  np.testing.assert_array_equal(targets['test_argmax_only']['cls_targets'], [0, 0])
  with pytest.raises(ValueError, match="Unknown --matcher 'nearest': use one of ssd, "
                                       'test_argmax_only'):
    matcher.from_config(config_lib.ModelConfig(matcher='nearest'))
