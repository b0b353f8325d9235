import numpy as np
import tensorflow as tf

from net import losses
from tests.graph_test_util import execute


def numpy_multibox_loss(logits, offsets, cls_targets, loc_targets, ratio=3.0, alpha=1.0):
  """Direct transcription of the paper's objective, one image and one anchor at a time."""
  shifted = logits - logits.max(axis=-1, keepdims=True)
  log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
  conf, loc, num_pos_total = 0.0, 0.0, 0
  for i in range(logits.shape[0]):
    positives = np.where(cls_targets[i] > 0)[0]
    negatives = np.where(cls_targets[i] == 0)[0]
    num_pos_total += len(positives)
    neg_loss = -log_probs[i, negatives, 0]
    # Stable sort: among equal losses, the lower anchor index comes first.
    order = sorted(range(len(negatives)), key=lambda k: (-neg_loss[k], negatives[k]))
    keep = min(int(ratio * len(positives)), len(negatives))
    hard = negatives[order[:keep]]
    conf += -sum(log_probs[i, a, cls_targets[i, a]] for a in positives)
    conf += -sum(log_probs[i, a, 0] for a in hard)
    for a in positives:
      d = np.abs(offsets[i, a] - loc_targets[i, a])
      loc += np.where(d < 1, 0.5 * d ** 2, d - 0.5).sum()
  n = max(num_pos_total, 1)
  return conf / n, alpha * loc / n, num_pos_total


def run_loss(logits, offsets, cls_targets, loc_targets, **kwargs):
  return execute(lambda l, o, c, t: losses.multibox_loss(l, o, c, t, **kwargs),
                 logits, offsets, cls_targets, loc_targets)


def test_smooth_l1_values():
  out = execute(losses.smooth_l1, np.array([-2.0, -0.5, 0.0, 0.5, 1.0, 3.0], np.float32))
  np.testing.assert_allclose(out, [1.5, 0.125, 0.0, 0.125, 0.5, 2.5])


def test_loss_matches_numpy_reference_on_random_batch():
  rng = np.random.RandomState(0)
  batch, anchors, classes = 3, 40, 5
  logits = rng.randn(batch, anchors, classes).astype(np.float32) * 2
  offsets = rng.randn(batch, anchors, 4).astype(np.float32)
  loc_targets = rng.randn(batch, anchors, 4).astype(np.float32)
  cls_targets = rng.choice([-1, 0, 0, 0, 0, 0, 1, 2, 3, 4], size=(batch, anchors)).astype(np.int64)
  cls_targets[2] = np.where(cls_targets[2] > 0, 0, cls_targets[2])  # image 2: no positives
  out = run_loss(logits, offsets, cls_targets, loc_targets, negative_ratio=3.0, loc_weight=1.0)
  conf, loc, npos = numpy_multibox_loss(logits, offsets, cls_targets, loc_targets)
  np.testing.assert_allclose(out['classification_loss'], conf, rtol=1e-5)
  np.testing.assert_allclose(out['localization_loss'], loc, rtol=1e-5)
  assert out['num_positives'] == npos
  # Image 2 has no positives, so none of its anchors is selected.
  assert not out['selected_mask'][2].any()


def test_hard_negatives_exact_selection_with_ties():
  # One image, 1 positive (anchor 0) -> 3 negatives kept out of anchors 1..6.
  # Background losses: anchors 2, 4 and 5 tie for the largest; 3 the smallest; 6 is ignored.
  bg_logit = np.array([0, 0.0, -1.0, 5.0, -1.0, -1.0, -9.0], np.float32)
  logits = np.stack([bg_logit, np.zeros(7, np.float32)], axis=-1)[None]
  cls_targets = np.array([[1, 0, 0, 0, 0, 0, -1]], np.int64)
  zeros = np.zeros([1, 7, 4], np.float32)
  out = run_loss(logits, zeros, cls_targets, zeros)
  assert out['selected_mask'][0].tolist() == [True, False, True, False, True, True, False]
  # With ratio 2 the two tied anchors with the lowest indices (2, 4) are taken.
  out = run_loss(logits, zeros, cls_targets, zeros, negative_ratio=2.0)
  assert out['selected_mask'][0].tolist() == [True, False, True, False, True, False, False]


def test_no_positives_gives_zero_loss_and_finite_gradients():
  logits = np.random.RandomState(1).randn(2, 10, 3).astype(np.float32)
  cls_targets = np.zeros([2, 10], np.int64)
  zeros = np.zeros([2, 10, 4], np.float32)

  def fn(l, o, c, t):
    out = losses.multibox_loss(l, o, c, t)
    total = out['classification_loss'] + out['localization_loss']
    return total, tf.gradients(total, [l, o])

  total, (grad_logits, grad_offsets) = execute(fn, logits, zeros, cls_targets, zeros)
  assert total == 0.0
  assert np.all(grad_logits == 0) and np.all(grad_offsets == 0)


def test_external_normalizer_divides_sums():
  rng = np.random.RandomState(2)
  logits = rng.randn(1, 8, 3).astype(np.float32)
  cls_targets = np.array([[1, 2, 0, 0, 0, 0, 0, -1]], np.int64)
  offsets = rng.randn(1, 8, 4).astype(np.float32)
  targets = rng.randn(1, 8, 4).astype(np.float32)
  own = run_loss(logits, offsets, cls_targets, targets)
  global_n = run_loss(logits, offsets, cls_targets, targets,
                      num_positives_normalizer=8.0)
  # Own N is 2; a global N of 8 gives a quarter of the loss.
  np.testing.assert_allclose(global_n['classification_loss'] * 4, own['classification_loss'],
                             rtol=1e-6)
  np.testing.assert_allclose(global_n['localization_loss'] * 4, own['localization_loss'],
                             rtol=1e-6)
