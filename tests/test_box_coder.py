import math

import numpy as np
import pytest

from tests.graph_test_util import execute
from utility import box_coder

VARIANCES = np.array([0.1, 0.1, 0.2, 0.2])


def _center(boxes):
  boxes = np.asarray(boxes, np.float64)
  return ((boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2,
          boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1])


def _reference_encode(boxes, anchors):
  """numpy float64 SSD encoding: (t_cy, t_cx, t_h, t_w) / variances."""
  gy, gx, gh, gw = _center(boxes)
  ay, ax, ah, aw = _center(anchors)
  raw = np.stack([(gy - ay) / ah, (gx - ax) / aw, np.log(gh / ah), np.log(gw / aw)], axis=-1)
  return raw / VARIANCES


def _reference_decode(offsets, anchors):
  ay, ax, ah, aw = _center(anchors)
  t = np.asarray(offsets, np.float64) * VARIANCES
  cy, cx = t[..., 0] * ah + ay, t[..., 1] * aw + ax
  h, w = np.exp(t[..., 2]) * ah, np.exp(t[..., 3]) * aw
  return np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)


def _random_boxes(rng, n, min_size=0.05, max_size=0.8):
  size = rng.uniform(min_size, max_size, [n, 2])
  corner = rng.uniform(-0.1, 0.9, [n, 2])
  return np.concatenate([corner, corner + size], axis=1).astype(np.float32)


def test_encode_hand_computed():
  anchors = np.array([[0.0, 0.0, 0.5, 0.5]], np.float32)  # centre (0.25, 0.25), size 0.5
  boxes = np.array([[0.1, 0.0, 0.5, 0.6]], np.float32)    # centre (0.3, 0.3), h 0.4, w 0.6
  # t_cy = 0.05 / 0.5 / 0.1 = 1; t_cx = 0.05 / 0.5 / 0.1 = 1; t_h = log(0.8) / 0.2;
  # t_w = log(1.2) / 0.2.
  expected = [[1.0, 1.0, math.log(0.8) / 0.2, math.log(1.2) / 0.2]]
  np.testing.assert_allclose(execute(box_coder.encode, boxes, anchors), expected, rtol=1e-5)


def test_encode_and_decode_match_numpy_reference():
  rng = np.random.RandomState(0)
  boxes, anchors = _random_boxes(rng, 50), _random_boxes(rng, 50)
  offsets = rng.normal(0.0, 2.0, [50, 4]).astype(np.float32)
  np.testing.assert_allclose(execute(box_coder.encode, boxes, anchors),
                             _reference_encode(boxes, anchors), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(execute(box_coder.decode, offsets, anchors),
                             _reference_decode(offsets, anchors), rtol=1e-5, atol=1e-6)


def test_round_trip():
  rng = np.random.RandomState(1)
  boxes, anchors = _random_boxes(rng, 200, 0.01, 1.0), _random_boxes(rng, 200)
  decoded = execute(lambda b, a: box_coder.decode(box_coder.encode(b, a), a), boxes, anchors)
  np.testing.assert_allclose(decoded, boxes, atol=1e-5)


def test_degenerate_box_gives_finite_offsets():
  anchors = np.array([[0.0, 0.0, 0.5, 0.5], [0.2, 0.2, 0.4, 0.4]], np.float32)
  boxes = np.array([[0.3, 0.3, 0.3, 0.3], [0.0, 0.0, 0.0, 0.0]], np.float32)  # zero size
  offsets = execute(box_coder.encode, boxes, anchors)
  assert np.all(np.isfinite(offsets))
  # Size clamped to 1e-8: t_h = log(1e-8 / 0.5) / 0.2 = -88.6 (anchor 0), log(1e-8 / 0.2) / 0.2.
  np.testing.assert_allclose(offsets[:, 2], [math.log(2e-8) / 0.2, math.log(5e-8) / 0.2],
                             rtol=1e-5)
  np.testing.assert_allclose(offsets[0, :2], [1.0, 1.0], rtol=1e-5)  # (0.3-0.25) / 0.5 / 0.1


def test_decode_clips_scale_against_overflow():
  anchors = np.array([[0.4, 0.4, 0.6, 0.6]], np.float32)  # size 0.2
  offsets = np.array([[0.0, 0.0, 1e4, -1e4]], np.float32)
  decoded = execute(box_coder.decode, offsets, anchors)
  # Height: exp(min(2000, log(62.5))) * 0.2 = 12.5 around centre 0.5; width: exp(-2000) * 0.2 = 0.
  np.testing.assert_allclose(decoded, [[0.5 - 6.25, 0.5, 0.5 + 6.25, 0.5]], rtol=1e-5)


def test_batched_broadcasting():
  rng = np.random.RandomState(2)
  anchors = _random_boxes(rng, 7)
  boxes = np.stack([_random_boxes(rng, 7) for _ in range(3)])  # [batch 3, num_anchors 7, 4]
  offsets = execute(box_coder.encode, boxes, anchors)
  assert offsets.shape == (3, 7, 4)
  for image in range(3):
    np.testing.assert_allclose(offsets[image], _reference_encode(boxes[image], anchors),
                               rtol=1e-4, atol=1e-5)
  decoded = execute(box_coder.decode, offsets, anchors)
  assert decoded.shape == (3, 7, 4)
  np.testing.assert_allclose(decoded, boxes, atol=1e-5)


def test_custom_variances_and_bad_variances():
  anchors = np.array([[0.0, 0.0, 0.5, 0.5]], np.float32)
  boxes = np.array([[0.1, 0.0, 0.5, 0.6]], np.float32)
  plain = execute(lambda b, a: box_coder.encode(b, a, variances=(1, 1, 1, 1)), boxes, anchors)
  np.testing.assert_allclose(plain, [[0.1, 0.1, math.log(0.8), math.log(1.2)]], rtol=1e-5)
  with pytest.raises(ValueError, match='variances must be 4 positive numbers'):
    box_coder.encode(boxes, anchors, variances=(0.1, 0.2))
  with pytest.raises(ValueError, match='variances must be 4 positive numbers'):
    box_coder.decode(boxes, anchors, variances=(0.1, 0.1, 0.0, 0.2))
