import colorsys

import numpy as np
import pytest
import tensorflow as tf

from preprocessing import photometric
from tests.graph_test_util import execute

tf1 = tf.compat.v1


def _random_image(seed, shape=(6, 7, 3)):
  image = np.random.RandomState(seed).uniform(0, 255, shape).astype(np.float32)
  image[0, 0] = [0, 0, 0]          # black, grey and saturated pixels: the HSV edge cases
  image[0, 1] = [128, 128, 128]
  image[0, 2] = [255, 0, 0]
  image[0, 3] = [255, 255, 255]
  return image


def _np_hsv_map(image, fn):
  """Applies fn(h, s, v) -> (h, s, v) per pixel with colorsys, on the 0-255 scale."""
  out = np.empty_like(image, dtype=np.float64)
  for index in np.ndindex(image.shape[:2]):
    h, s, v = colorsys.rgb_to_hsv(*(image[index] / 255.0))
    out[index] = np.array(colorsys.hsv_to_rgb(*fn(h, s, v))) * 255.0
  return out


def _np_saturation(image, factor):
  return _np_hsv_map(image, lambda h, s, v: (h, min(max(s * factor, 0.0), 1.0), v))


def _np_hue(image, delta):
  return _np_hsv_map(image, lambda h, s, v: ((h + delta) % 1.0, s, v))


def _np_distort(image, p):
  """numpy reference of distort_color (Caffe's DistortImage with clipping after each op)."""
  x = image.astype(np.float64)
  if p['apply_brightness']:
    x = np.clip(x + p['brightness_delta'], 0, 255)
  if p['apply_contrast'] and p['contrast_first']:
    x = np.clip(x * p['contrast_factor'], 0, 255)
  if p['apply_saturation']:
    x = _np_saturation(x, p['saturation_factor'])
  if p['apply_hue']:
    x = _np_hue(x, p['hue_delta'])
  if p['apply_contrast'] and not p['contrast_first']:
    x = np.clip(x * p['contrast_factor'], 0, 255)
  if p['apply_channel_swap']:
    x = x[..., list(p['channel_permutation'])]
  return x


def _params(**overrides):
  params = dict(apply_brightness=False, brightness_delta=0.0, apply_contrast=False,
                contrast_factor=1.0, apply_saturation=False, saturation_factor=1.0,
                apply_hue=False, hue_delta=0.0, contrast_first=True, apply_channel_swap=False,
                channel_permutation=[0, 1, 2])
  params.update(overrides)
  return params


def _run_distort(image, params):
  def fn(x):
    tensors = {k: tf.constant(v, tf.int32 if k == 'channel_permutation' else None)
               for k, v in params.items()}
    tensors = {k: tf.cast(v, tf.float32) if v.dtype == tf.float64 else v
               for k, v in tensors.items()}
    return photometric.distort_color(x, tensors)
  return execute(fn, image)


def test_brightness_and_contrast_hand_computed_with_clipping():
  pixel = np.array([[[10.0, 250.0, 100.0]]], np.float32)
  np.testing.assert_allclose(execute(lambda x: photometric.adjust_brightness(x, 32.0), pixel),
                             [[[42.0, 255.0, 132.0]]])
  np.testing.assert_allclose(execute(lambda x: photometric.adjust_brightness(x, -32.0), pixel),
                             [[[0.0, 218.0, 68.0]]])
  np.testing.assert_allclose(execute(lambda x: photometric.adjust_contrast(x, 1.5), pixel),
                             [[[15.0, 255.0, 150.0]]])


def test_saturation_matches_colorsys_and_the_tf_kernel():
  image = _random_image(0)
  for factor in (0.0, 0.5, 1.0, 1.5, 3.0):
    ours, kernel = execute(lambda x: (photometric.adjust_saturation(x, factor),
                                      tf.image.adjust_saturation(x, factor)), image)
    np.testing.assert_allclose(ours, _np_saturation(image, factor), atol=2e-3)
    np.testing.assert_allclose(ours, kernel, atol=2e-3)


def test_hue_matches_colorsys_on_the_0_255_scale():
  image = _random_image(1)
  for delta in (-0.05, 0.03, 0.5):
    result = execute(lambda x: photometric.adjust_hue(x, delta), image)
    np.testing.assert_allclose(result, _np_hue(image, delta), atol=2e-2)


def test_swap_channels_reorders_exactly():
  image = _random_image(2)
  result = execute(lambda x: photometric.swap_channels(x, [2, 0, 1]), image)
  np.testing.assert_array_equal(result, image[..., [2, 0, 1]])


@pytest.mark.parametrize('contrast_first', [True, False])
def test_distort_color_matches_numpy_reference_in_both_orders(contrast_first):
  image = _random_image(3)
  params = _params(apply_brightness=True, brightness_delta=-20.0, apply_contrast=True,
                   contrast_factor=1.4, apply_saturation=True, saturation_factor=1.3,
                   apply_hue=True, hue_delta=0.04, contrast_first=contrast_first,
                   apply_channel_swap=True, channel_permutation=[1, 2, 0])
  np.testing.assert_allclose(_run_distort(image, params), _np_distort(image, params), atol=0.05)


def test_the_two_orders_differ():
  # Contrast before or after the HSV ops gives different pixels when clipping is involved.
  image = np.array([[[240.0, 120.0, 30.0]]], np.float32)
  common = dict(apply_contrast=True, contrast_factor=1.5, apply_saturation=True,
                saturation_factor=0.5)
  first = _run_distort(image, _params(contrast_first=True, **common))
  last = _run_distort(image, _params(contrast_first=False, **common))
  # first: x1.5 -> [255, 180, 45], halving v - x -> [255, 217.5, 150].
  # last: halving v - x -> [240, 180, 135], x1.5 -> [255, 255, 202.5].
  np.testing.assert_allclose(first, [[[255.0, 217.5, 150.0]]], atol=1e-3)
  np.testing.assert_allclose(last, [[[255.0, 255.0, 202.5]]], atol=1e-3)


def test_not_applied_ops_leave_the_image_unchanged():
  image = _random_image(4)
  np.testing.assert_array_equal(_run_distort(image, _params(brightness_delta=30.0,
                                                            saturation_factor=0.1)), image)


def test_random_distortion_keeps_shape_dtype_and_range():
  image = _random_image(5, (9, 11, 3))
  config = photometric.PhotometricConfig(prob=1.0, channel_swap_prob=1.0)
  with tf.Graph().as_default():
    seed = tf1.placeholder(tf.int64, [2])
    out = photometric.random_distort_color(tf.constant(image), config, seed)
    assert out.dtype == tf.float32
    with tf1.Session() as sess:
      for i in range(20):
        result = sess.run(out, {seed: [i, 0]})
        assert result.shape == (9, 11, 3)
        assert result.min() >= 0.0 and result.max() <= 255.0
        assert not np.allclose(result, image)


def test_sampled_params_follow_the_configured_ranges_and_probabilities():
  config = photometric.PhotometricConfig()
  with tf.Graph().as_default():
    seed = tf1.placeholder(tf.int64, [2])
    params = photometric.sample_photometric_params(config, seed)
    with tf1.Session() as sess:
      draws = [sess.run(params, {seed: [i, 1]}) for i in range(400)]
  for key in ('apply_brightness', 'apply_contrast', 'apply_saturation', 'apply_hue',
              'contrast_first'):
    rate = np.mean([d[key] for d in draws])
    assert 0.4 < rate < 0.6, (key, rate)   # p = 0.5; 400 draws: 4 sigma is 0.1
  applied = [d for d in draws if d['apply_brightness']]
  deltas = np.array([d['brightness_delta'] for d in applied])
  assert deltas.min() >= -32.0 and deltas.max() <= 32.0 and deltas.std() > 10.0
  factors = np.array([d['contrast_factor'] for d in draws if d['apply_contrast']])
  assert factors.min() >= 0.5 and factors.max() <= 1.5
  hues = np.array([d['hue_delta'] for d in draws if d['apply_hue']])
  # +-36 degrees: Caffe's hue_delta 18 in OpenCV's 0-180 hue units.
  assert np.abs(hues).max() <= 0.1 and np.abs(hues).max() > 0.09
  # Not applied -> identity values; channel swap is off by default.
  assert all(d['brightness_delta'] == 0.0 for d in draws if not d['apply_brightness'])
  assert not any(d['apply_channel_swap'] for d in draws)
  assert all(list(d['channel_permutation']) == [0, 1, 2] for d in draws)


def test_channel_swap_draws_all_six_orders_when_enabled():
  config = photometric.PhotometricConfig(channel_swap_prob=1.0)
  with tf.Graph().as_default():
    seed = tf1.placeholder(tf.int64, [2])
    permutation = photometric.sample_photometric_params(config, seed)['channel_permutation']
    with tf1.Session() as sess:
      seen = {tuple(sess.run(permutation, {seed: [i, 2]})) for i in range(200)}
  assert seen == set(photometric.CHANNEL_PERMUTATIONS)


def test_same_seed_same_params_different_seed_different_params():
  def fn():
    return [photometric.sample_photometric_params(seed=tf.constant(s, tf.int64))
            for s in ([3, 4], [3, 4], [5, 6])]
  with tf.Graph().as_default():
    tensors = fn()
    with tf1.Session() as sess:
      a, b, c = sess.run(tensors)
  assert all(np.array_equal(a[k], b[k]) for k in a)
  assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_random_ops_with_prob_0_are_identity_and_with_prob_1_apply_their_op():
  image = _random_image(6)
  seed = np.array([7, 8], np.int64)

  def fn(x, s):
    return (photometric.random_brightness(x, prob=0.0, seed=s),
            photometric.random_brightness(x, prob=1.0, seed=s),
            photometric.random_contrast(x, prob=1.0, seed=s),
            photometric.random_saturation(x, prob=1.0, seed=s),
            photometric.random_hue(x, prob=1.0, seed=s),
            photometric.random_channel_swap(x, prob=1.0, seed=s))
  unchanged, bright, contrast, saturated, hue, swapped = execute(fn, image, seed)
  np.testing.assert_array_equal(unchanged, image)
  mid = (image > 40) & (image < 215)  # away from clipping: a single shift / factor everywhere
  shift = (bright - image)[mid]
  assert np.ptp(shift) < 1e-3 and abs(shift[0]) <= 32.0
  ratio = (contrast / np.maximum(image, 1.0))[mid & (image * 1.5 < 255)]
  assert np.ptp(ratio) < 1e-4 and 0.5 <= ratio[0] <= 1.5
  assert not np.allclose(saturated, image) and not np.allclose(hue, image)
  assert any(np.array_equal(swapped, image[..., list(p)])
             for p in photometric.CHANNEL_PERMUTATIONS)


def test_config_rejects_bad_values_with_a_message():
  with pytest.raises(ValueError, match='contrast_range'):
    photometric.PhotometricConfig(contrast_range=(1.5, 0.5))
  with pytest.raises(ValueError, match='channel_swap_prob must be in'):
    photometric.PhotometricConfig(channel_swap_prob=2.0)
  with pytest.raises(ValueError, match='hue_max_delta'):
    photometric.PhotometricConfig(hue_max_delta=18.0)
