"""Photometric distortion of SSD training images (SSD paper section 3.6; Caffe DistortImage).

Images here are float32 ``[height, width, 3]`` RGB on the 0-255 scale. Every op clips its
result to [0, 255], as the Caffe reference does implicitly by working on uint8 images.

All ops are pointwise (each output pixel depends only on the same input pixel). That is what
lets the fast SSD path apply them after the crop-and-resize, on the small output, rather than
on the full image (see ``preprocessing/ssd_preprocessing.py``). For that reason contrast is
Caffe's ``x * factor`` (``cv::Mat::convertTo(alpha)``, also ssd.pytorch's RandomContrast), not
``tf.image.adjust_contrast``, which scales around the mean of the whole image.

Randomness: every ``random_*`` op and ``sample_photometric_params`` take ``seed``: None (draws
from TF's stateful generator), a Python int, or an int32/int64 tensor of shape [2], used with
the ``tf.random.stateless_*`` ops, so the same seed gives the same draw in any graph and in any
tf.data thread (see ``as_stateless_seed``; the geometric ops share these helpers). The
deterministic ``adjust_*`` ops take the drawn values as arguments, which lets two
implementations of the pipeline be driven by the same draws.

Hue: up to 36/360 of the circle. The authors' ssd_pascal.py sets hue_delta 18, and Caffe's
AdjustHue (im_transforms.cpp) adds it to OpenCV's 8-bit hue channel, whose circle is 180, so
18 there is 36 degrees (ssd.pytorch reads the 18 as degrees; docs/RECIPE.md).
"""

import dataclasses
import itertools
import numbers

import tensorflow as tf

_PIXEL_MAX = 255.0

# The 6 orderings of the RGB channels; Caffe's RandomOrderChannels picks one uniformly
# (the identity included), as does ssd.pytorch's RandomLightingNoise.
CHANNEL_PERMUTATIONS = tuple(itertools.permutations(range(3)))


@dataclasses.dataclass(frozen=True)
class PhotometricConfig:
  """Settings of the photometric distortion; defaults are the authors' ssd_pascal.py.

  Attributes:
    prob: probability of applying each of brightness, contrast, saturation and hue,
      independently.
    brightness_max_delta: brightness shift drawn from U[-delta, delta], on the 0-255 scale.
    contrast_range: (lower, upper) of the contrast factor drawn from U[lower, upper].
    saturation_range: (lower, upper) of the saturation factor.
    hue_max_delta: hue shift drawn from U[-delta, delta], as a fraction of the hue circle
      (36 degrees = 0.1, Caffe's hue_delta 18 in OpenCV's 0-180 units).
    channel_swap_prob: probability of a random channel permutation. Default 0: the authors'
      ssd_pascal.py sets random_order_prob to 0; ssd.pytorch uses 0.5. the recipe calls it optional.
  """
  prob: float = 0.5
  brightness_max_delta: float = 32.0
  contrast_range: tuple = (0.5, 1.5)
  saturation_range: tuple = (0.5, 1.5)
  hue_max_delta: float = 36.0 / 360.0
  channel_swap_prob: float = 0.0

  def __post_init__(self):
    for name in ('prob', 'channel_swap_prob'):
      if not 0.0 <= getattr(self, name) <= 1.0:
        raise ValueError('PhotometricConfig.%s must be in [0, 1]; got %r.'
                         % (name, getattr(self, name)))
    for name in ('contrast_range', 'saturation_range'):
      if len(getattr(self, name)) != 2:
        raise ValueError('PhotometricConfig.%s must be (lower, upper); got %r.'
                         % (name, getattr(self, name)))
      lower, upper = getattr(self, name)
      if not 0.0 <= lower <= upper:
        raise ValueError('PhotometricConfig.%s must be (lower, upper) with 0 <= lower <= upper; '
                         'got %r.' % (name, getattr(self, name)))
    if not 0.0 <= self.hue_max_delta <= 0.5:
      raise ValueError('PhotometricConfig.hue_max_delta is a fraction of the hue circle and '
                       'must be in [0, 0.5]; got %r.' % self.hue_max_delta)


def _clip(image):
  return tf.clip_by_value(image, 0.0, _PIXEL_MAX)


def adjust_brightness(image, delta):
  """Adds ``delta`` (float32 scalar, 0-255 scale) to every value; float32 [h, w, 3] -> same."""
  return _clip(image + delta)


def adjust_contrast(image, factor):
  """Multiplies every value by ``factor`` (Caffe's contrast); float32 [h, w, 3] -> same."""
  return _clip(image * factor)


def adjust_saturation(image, factor):
  """Scales the HSV saturation by ``factor`` (clipped to 1), keeping hue and value.

  Computed in RGB: with v = max and m = min over the channels, HSV's saturation is
  (v - m) / v and hue depends only on the ratios of (v - channel), so scaling the saturation
  by k = min(factor, v / (v - m)) maps each channel x to v - (v - x) * k. Same result as
  tf.image.adjust_saturation (checked in the tests), about 3x faster on CPU; channel planes
  (a transpose) because reductions and slices over a last axis of 3 are slow.

  Args:
    image: float32 [height, width, 3] RGB, 0-255.
    factor: float32 scalar >= 0.

  Returns:
    float32 [height, width, 3], values in [0, 255] when the input's are.
  """
  planes = tf.transpose(image, [2, 0, 1])
  red, green, blue = planes[0], planes[1], planes[2]
  value = tf.maximum(tf.maximum(red, green), blue)
  chroma = value - tf.minimum(tf.minimum(red, green), blue)
  # Grey pixels (chroma 0) have v - x = 0, so any finite k leaves them unchanged.
  scale = tf.minimum(factor, value / tf.maximum(chroma, 1e-6))
  return tf.transpose(value - (value - planes) * scale, [1, 2, 0])


def adjust_hue(image, delta):
  """Rotates the hue by ``delta`` (fraction of the circle); float32 [h, w, 3] RGB 0-255 -> same."""
  return _clip(tf.image.adjust_hue(image, delta))


def swap_channels(image, permutation):
  """Reorders the channels: output channel i = input channel permutation[i].

  A matmul with a 0/1 matrix (exact for finite values): tf.gather or tf.reverse on the last
  axis of an HWC image is several times slower on CPU.

  Args:
    image: float32 [height, width, 3].
    permutation: int32 [3] tensor or list.

  Returns:
    float32 [height, width, 3].
  """
  selection = tf.one_hot(permutation, 3, dtype=image.dtype)  # [out channel, in channel]
  flat = tf.reshape(image, [-1, 3])
  return tf.reshape(tf.matmul(flat, selection, transpose_b=True), tf.shape(image))


def as_stateless_seed(seed):
  """Turns a ``seed`` argument into an int tensor [2] for the tf.random.stateless_* ops.

  Args:
    seed: None (a fresh seed from TF's stateful generator: random, not reproducible), a Python
      int (the constant seed [seed, 0]) or an int32/int64 tensor [2] (used as is).
  """
  if seed is None:
    return tf.random.uniform([2], maxval=tf.int64.max, dtype=tf.int64)
  if isinstance(seed, numbers.Integral):
    return tf.constant([int(seed), 0], tf.int64)
  return seed


def split_seed(seed, num):
  """Derives ``num`` independent stateless seeds (a list of int tensors [2]) from ``seed``."""
  return tf.unstack(tf.random.experimental.stateless_split(as_stateless_seed(seed), num))


def sample_photometric_params(config=PhotometricConfig(), seed=None):
  """Draws the random values of one photometric distortion.

  Args:
    config: a PhotometricConfig.
    seed: None, a Python int or an int32/int64 tensor [2] (see as_stateless_seed).

  Returns:
    A dict of scalar tensors: ``brightness_delta``, ``contrast_factor``, ``saturation_factor``,
    ``hue_delta`` (float32; the identity value 0 or 1 when the op is not applied), ``apply_*``
    (bool, one per op), ``contrast_first`` (bool: Caffe's order brightness, contrast,
    saturation, hue; otherwise brightness, saturation, hue, contrast) and
    ``channel_permutation`` (int32 [3], the identity when no swap).
  """
  coins = tf.random.stateless_uniform([11], as_stateless_seed(seed))
  apply = coins[:4] < config.prob

  def _draw(index, lower, upper, identity, apply_index):
    value = lower + (upper - lower) * coins[index]
    return tf.where(apply[apply_index], value, identity)

  permutation_index = tf.minimum(tf.cast(coins[9] * 6.0, tf.int32), 5)
  permutation = tf.gather(tf.constant(CHANNEL_PERMUTATIONS, tf.int32), permutation_index)
  swap = coins[8] < config.channel_swap_prob
  return {
      'apply_brightness': apply[0],
      'brightness_delta': _draw(4, -config.brightness_max_delta, config.brightness_max_delta,
                                0.0, 0),
      'apply_contrast': apply[1],
      'contrast_factor': _draw(5, *config.contrast_range, 1.0, 1),
      'apply_saturation': apply[2],
      'saturation_factor': _draw(6, *config.saturation_range, 1.0, 2),
      'apply_hue': apply[3],
      'hue_delta': _draw(7, -config.hue_max_delta, config.hue_max_delta, 0.0, 3),
      'contrast_first': coins[10] < 0.5,
      'apply_channel_swap': swap,
      'channel_permutation': tf.where(swap, permutation, tf.range(3, dtype=tf.int32)),
  }


def distort_color(image, params):
  """Applies one photometric distortion with drawn ``params`` (see sample_photometric_params).

  Order as in Caffe's DistortImage: brightness; then contrast, saturation, hue or saturation,
  hue, contrast; then the channel permutation. An op that is not applied is skipped (tf.cond),
  as each costs a pass over the image.

  Args:
    image: float32 [height, width, 3] RGB, values in [0, 255].
    params: dict of tensors from sample_photometric_params.

  Returns:
    float32 [height, width, 3], values in [0, 255].
  """
  def maybe(image, apply, adjust, value):
    return tf.cond(apply, lambda: adjust(image, value), lambda: image)

  contrast_first = params['contrast_first']
  image = maybe(image, params['apply_brightness'], adjust_brightness, params['brightness_delta'])
  image = maybe(image, params['apply_contrast'] & contrast_first, adjust_contrast,
                params['contrast_factor'])
  image = maybe(image, params['apply_saturation'], adjust_saturation,
                params['saturation_factor'])
  image = maybe(image, params['apply_hue'], adjust_hue, params['hue_delta'])
  image = maybe(image, params['apply_contrast'] & ~contrast_first, adjust_contrast,
                params['contrast_factor'])
  return maybe(image, params['apply_channel_swap'], swap_channels,
               params['channel_permutation'])


def _apply_with_prob(image, prob, seed, draw_and_apply):
  """Runs draw_and_apply(image, uniform_value) with probability ``prob``; ``seed`` as above."""
  coins = tf.random.stateless_uniform([2], as_stateless_seed(seed))
  return tf.cond(coins[0] < prob, lambda: draw_and_apply(image, coins[1]), lambda: image)


def random_brightness(image, max_delta=32.0, prob=0.5, seed=None):
  """With probability ``prob`` adds U[-max_delta, max_delta]; float32 [h, w, 3] -> same."""
  return _apply_with_prob(image, prob, seed, lambda x, u: adjust_brightness(
      x, (2.0 * u - 1.0) * max_delta))


def random_contrast(image, lower=0.5, upper=1.5, prob=0.5, seed=None):
  """With probability ``prob`` multiplies by U[lower, upper]; float32 [h, w, 3] -> same."""
  return _apply_with_prob(image, prob, seed, lambda x, u: adjust_contrast(
      x, lower + (upper - lower) * u))


def random_saturation(image, lower=0.5, upper=1.5, prob=0.5, seed=None):
  """With probability ``prob`` scales saturation by U[lower, upper]; float32 [h, w, 3] -> same."""
  return _apply_with_prob(image, prob, seed, lambda x, u: adjust_saturation(
      x, lower + (upper - lower) * u))


def random_hue(image, max_delta=18.0 / 360.0, prob=0.5, seed=None):
  """With probability ``prob`` rotates hue by U[-max_delta, max_delta]; float32 [h, w, 3]."""
  return _apply_with_prob(image, prob, seed, lambda x, u: adjust_hue(
      x, (2.0 * u - 1.0) * max_delta))


def random_channel_swap(image, prob=0.5, seed=None):
  """With probability ``prob`` applies one of the 6 channel orders; float32 [h, w, 3] -> same."""
  return _apply_with_prob(image, prob, seed, lambda x, u: swap_channels(
      x, tf.gather(tf.constant(CHANNEL_PERMUTATIONS, tf.int32),
                   tf.minimum(tf.cast(u * 6.0, tf.int32), 5))))


def random_distort_color(image, config=PhotometricConfig(), seed=None):
  """Draws params and applies them: float32 [h, w, 3] RGB 0-255 -> same shape, in [0, 255]."""
  return distort_color(image, sample_photometric_params(config, seed))
