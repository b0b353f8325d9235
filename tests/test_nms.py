import numpy as np
import pytest

from tests.graph_test_util import execute
from utility import nms


def _iou(a, b):
  """IoU of two [ymin, xmin, ymax, xmax] boxes (float64)."""
  h = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
  w = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
  inter = h * w
  union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
  return inter / union if union > 0 else 0.0


def reference_nms(boxes, scores, score_threshold=0.01, pre_nms_top_k=400, iou_threshold=0.45,
                  max_per_class=200, max_per_image=200):
  """Greedy per-class NMS of one image in plain numpy; returns (scores, classes, boxes)."""
  num_anchors, num_classes = scores.shape
  detections = []
  for label in range(1, num_classes):
    class_scores = scores[:, label]
    order = np.lexsort((np.arange(num_anchors), -class_scores))[:pre_nms_top_k]
    selected = []
    for i in order:
      if class_scores[i] <= score_threshold or len(selected) == max_per_class:
        break
      if all(_iou(boxes[i], boxes[j]) <= iou_threshold for j in selected):
        selected.append(i)
    detections += [(class_scores[i], label, rank, i) for rank, i in enumerate(selected)]
  detections.sort(key=lambda d: (-d[0], d[1], d[2]))
  detections = detections[:max_per_image]
  return (np.array([d[0] for d in detections], np.float32),
          np.array([d[1] for d in detections], np.int32),
          np.array([boxes[d[3]] for d in detections], np.float32).reshape(-1, 4))


def _run(boxes, scores, **kwargs):
  return execute(lambda b, s: nms.batch_multiclass_nms(b, s, **kwargs), boxes, scores)


def _random_inputs(seed, batch, num_anchors, num_classes, temperature):
  rng = np.random.RandomState(seed)
  centers = rng.uniform(0.1, 0.9, [batch, num_anchors, 2])
  sizes = rng.uniform(0.05, 0.3, [batch, num_anchors, 2])
  boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=-1)
  logits = rng.randn(batch, num_anchors, num_classes) * temperature
  scores = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  return boxes.astype(np.float32), scores.astype(np.float32)


def _assert_matches_reference(out, boxes, scores, **kwargs):
  max_per_image = kwargs.get('max_per_image', 200)
  for b in range(boxes.shape[0]):
    ref_scores, ref_classes, ref_boxes = reference_nms(boxes[b], scores[b], **kwargs)
    n = len(ref_scores)
    assert out['num_detections'][b] == n
    np.testing.assert_array_equal(out['scores'][b, :n], ref_scores)
    np.testing.assert_array_equal(out['classes'][b, :n], ref_classes)
    np.testing.assert_array_equal(out['boxes'][b, :n], ref_boxes)
    # Zero padding after the valid detections.
    assert not out['scores'][b, n:].any() and not out['classes'][b, n:].any()
    assert not out['boxes'][b, n:].any()
    assert out['scores'].shape == (boxes.shape[0], max_per_image)


def test_random_boxes_match_numpy_reference_with_all_caps_active():
  boxes, scores = _random_inputs(seed=0, batch=2, num_anchors=300, num_classes=4,
                                 temperature=2.0)
  kwargs = dict(score_threshold=0.2, pre_nms_top_k=40, iou_threshold=0.3, max_per_class=12,
                max_per_image=25)
  out = _run(boxes, scores, **kwargs)
  _assert_matches_reference(out, boxes, scores, **kwargs)
  # The caps bind: 3 classes x 12 > 25 kept per image.
  assert out['num_detections'].tolist() == [25, 25]


def test_random_boxes_match_numpy_reference_with_reference_settings():
  boxes, scores = _random_inputs(seed=1, batch=2, num_anchors=1200, num_classes=3,
                                 temperature=3.0)
  out = _run(boxes, scores)
  _assert_matches_reference(out, boxes, scores)
  assert out['boxes'].dtype == np.float32 and out['classes'].dtype == np.int32
  assert out['num_detections'].dtype == np.int32


def test_hand_made_overlaps_threshold_and_background():
  boxes = np.array([[[0.0, 0.0, 0.5, 0.5],     # 0
                     [0.0, 0.1, 0.5, 0.6],     # 1: IoU with 0 = 0.2 / 0.3 = 0.667 > 0.45
                     [0.6, 0.6, 1.0, 1.0],     # 2: disjoint
                     [0.0, 0.0, 1.0, 0.5]]],   # 3: IoU with 0 = 0.25 / 0.5 = 0.5
                   np.float32)
  # Columns: background, class 1, class 2.
  scores = np.array([[[0.99, 0.9, 0.0],
                      [0.99, 0.8, 0.6],
                      [0.99, 0.7, 0.01],       # class 2 at exactly the threshold: dropped
                      [0.99, 0.0, 0.0]]], np.float32)
  out = _run(boxes, scores, max_per_image=5)
  # Class 1 keeps 0 and 2 (1 is suppressed by 0); class 2 keeps box 1 (no competitor).
  assert out['num_detections'].tolist() == [3]
  np.testing.assert_array_equal(out['scores'][0], np.float32([0.9, 0.7, 0.6, 0, 0]))
  assert out['classes'][0].tolist() == [1, 1, 2, 0, 0]
  np.testing.assert_array_equal(out['boxes'][0, :3], boxes[0, [0, 2, 1]])
  # Background (index 0, scored 0.99 everywhere) is never output.
  assert 0 not in out['classes'][0, :3]


def test_iou_equal_to_threshold_is_kept():
  boxes = np.array([[[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 1.0, 0.5]]], np.float32)  # IoU 0.5
  scores = np.array([[[0.0, 0.9], [0.0, 0.8]]], np.float32)
  assert _run(boxes, scores, iou_threshold=0.5)['num_detections'].tolist() == [2]
  assert _run(boxes, scores, iou_threshold=0.49)['num_detections'].tolist() == [1]


def test_pre_nms_top_k_and_caps_and_ties():
  # Four disjoint boxes; class 1 scores tie, so anchor order decides.
  boxes = np.array([[[0.0, 0.0, 0.1, 0.1], [0.2, 0.2, 0.3, 0.3], [0.4, 0.4, 0.5, 0.5],
                     [0.6, 0.6, 0.7, 0.7]]], np.float32)
  scores = np.array([[[0, 0.5, 0.2], [0, 0.5, 0.3], [0, 0.5, 0.4], [0, 0.5, 0.1]]],
                    np.float32)
  top2 = _run(boxes, scores, pre_nms_top_k=2, max_per_image=6)
  # Class 1: anchors 0, 1 (ties by index); class 2: anchors 2 (0.4), 1 (0.3).
  np.testing.assert_array_equal(top2['boxes'][0, :4], boxes[0, [0, 1, 2, 1]])
  assert top2['classes'][0].tolist() == [1, 1, 2, 2, 0, 0]
  per_class = _run(boxes, scores, max_per_class=1, max_per_image=6)
  assert per_class['classes'][0].tolist() == [1, 2, 0, 0, 0, 0]
  np.testing.assert_array_equal(per_class['boxes'][0, :2], boxes[0, [0, 2]])
  per_image = _run(boxes, scores, max_per_image=3)
  assert per_image['num_detections'].tolist() == [3]
  assert per_image['classes'][0].tolist() == [1, 1, 1]


def test_image_without_detections_is_all_padding():
  boxes = np.zeros([2, 3, 4], np.float32)
  boxes[..., 2:] = 0.5
  scores = np.zeros([2, 3, 3], np.float32)
  scores[0, :, 0] = 1.0                      # image 0: background everywhere
  scores[1, 0] = [0.0, 0.0, 1.0]             # image 1: one class-2 detection
  out = _run(boxes, scores, max_per_image=4)
  assert out['num_detections'].tolist() == [0, 1]
  assert out['classes'].tolist() == [[0, 0, 0, 0], [2, 0, 0, 0]]
  assert not out['boxes'][0].any()


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match='max_per_image must be >= 1'):
    _run(np.zeros([1, 2, 4], np.float32), np.zeros([1, 2, 3], np.float32), max_per_image=0)
  with pytest.raises(ValueError, match='num_classes >= 2'):
    _run(np.zeros([1, 2, 4], np.float32), np.zeros([1, 2, 1], np.float32))


def test_unknown_batch_and_anchor_count():
  # Export and eval feed [None, None, ...] tensors: shapes must not need to be static.
  import tensorflow as tf
  boxes, scores = _random_inputs(seed=2, batch=3, num_anchors=50, num_classes=3,
                                 temperature=2.0)
  with tf.Graph().as_default():
    boxes_in = tf.compat.v1.placeholder(tf.float32, [None, None, 4])
    scores_in = tf.compat.v1.placeholder(tf.float32, [None, None, 3])
    outputs = nms.batch_multiclass_nms(boxes_in, scores_in, max_per_image=10)
    assert outputs['boxes'].shape.as_list() == [None, 10, 4]
    with tf.compat.v1.Session() as sess:
      out = sess.run(outputs, {boxes_in: boxes, scores_in: scores})
  _assert_matches_reference(out, boxes, scores, max_per_image=10)
