"""Geometric augmentation of SSD training images: expand, min-IoU crop, flip, resize.

Boxes are float32 ``[num_boxes, 4]`` ``[ymin, xmin, ymax, xmax]`` normalized to the image they
belong to. Images are ``[height, width, 3]``, RGB, values on the 0-255 scale.

Each step comes in three layers so that two implementations can share the same random draws:
``sample_*`` draws the parameters (tensors), ``apply_*`` applies them deterministically, and the
``expand`` / ``random_crop_with_constraints`` / ``random_flip_left_right`` ops do both.
Expand and crop draw integer pixel rectangles (Caffe's data layer cuts whole pixels too), so
that the materialised reference (``apply_*``) and the fast path (``crop_rect_in_image`` +
``crop_and_resize_rect``, one resampling of the original image) see exactly the same geometry.

Randomness: ``seed`` is None (TF's stateful generator), a Python int or an int32/int64 tensor [2]
for the ``tf.random.stateless_*`` ops, which gives the same draw in any graph and any tf.data
thread (``preprocessing.photometric.as_stateless_seed``).
"""

import dataclasses

import numpy as np
import tensorflow as tf

from preprocessing.photometric import as_stateless_seed
from preprocessing.photometric import split_seed
from utility import boxes as boxes_lib


# The crop samplers of the authors' ssd_pascal.py (batch_sampler): besides the whole image,
# one sampler per (min, max) IoU pair; a patch satisfies a sampler when some ground-truth box
# has an IoU with it in [min, max]. The last pair is Caffe's sampler with only
# max_jaccard_overlap 1.0, i.e. any patch while the image has an object.
CAFFE_CROP_MIN_IOUS = (0.1, 0.3, 0.5, 0.7, 0.9, 0.0)
CAFFE_CROP_MAX_IOUS = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)


@dataclasses.dataclass(frozen=True)
class GeometricConfig:
  """Settings of the geometric augmentation; defaults are the authors' Caffe values.

  Sources: ssd_pascal.py (expand_param, batch_sampler) and sampler.cpp of the authors' Caffe
  SSD; the SSD paper (v3) section 2.2 "Data augmentation" and 3.6.

  Attributes:
    expand_prob: probability of the zoom-out ("expansion"), expand_param prob 0.5.
    max_expand_ratio: the canvas side is U[1, max_expand_ratio] times the image side (4.0).
    crop_min_ious, crop_max_ious: one crop sampler per pair (see CAFFE_CROP_MIN_IOUS).
    crop_whole_image: the first Caffe sampler, which always yields the whole image.
    crop_max_trials: patches each sampler tries; it keeps its first success (max_trials 50,
      max_sample 1). One of the collected samples is then chosen uniformly.
    crop_min_scale, crop_max_scale: patch scale s ~ U[min, max] (0.3, 1.0).
    crop_min_aspect_ratio, crop_max_aspect_ratio: patch aspect ratio (width / height, in
      coordinates normalized to the canvas) ~ U[max(min, s^2), min(max, 1 / s^2)] (0.5, 2.0);
      the patch is s * sqrt(ar) wide and s / sqrt(ar) high, so it always fits.
    flip_prob: probability of a horizontal flip (0.5).
  """
  expand_prob: float = 0.5
  max_expand_ratio: float = 4.0
  crop_min_ious: tuple = CAFFE_CROP_MIN_IOUS
  crop_max_ious: tuple = CAFFE_CROP_MAX_IOUS
  crop_whole_image: bool = True
  crop_max_trials: int = 50
  crop_min_scale: float = 0.3
  crop_max_scale: float = 1.0
  crop_min_aspect_ratio: float = 0.5
  crop_max_aspect_ratio: float = 2.0
  flip_prob: float = 0.5

  def __post_init__(self):
    for name in ('expand_prob', 'flip_prob'):
      if not 0.0 <= getattr(self, name) <= 1.0:
        raise ValueError('%s must be in [0, 1]; got %r.' % (name, getattr(self, name)))
    if not 0.0 < self.crop_min_scale <= self.crop_max_scale <= 1.0:
      raise ValueError('need 0 < crop_min_scale <= crop_max_scale <= 1; got '
                       '%r and %r.' % (self.crop_min_scale, self.crop_max_scale))
    if len(self.crop_min_ious) != len(self.crop_max_ious):
      raise ValueError('crop_min_ious and crop_max_ious need one value per '
                       'sampler; got %d and %d values.'
                       % (len(self.crop_min_ious), len(self.crop_max_ious)))
    if not all(0.0 <= low <= high <= 1.0
               for low, high in zip(self.crop_min_ious, self.crop_max_ious)):
      raise ValueError('crop_min_ious / crop_max_ious must be IoUs in [0, 1] '
                       'with min <= max; got %r and %r.'
                       % (self.crop_min_ious, self.crop_max_ious))
    if not (self.crop_min_ious or self.crop_whole_image):
      raise ValueError('need crop_whole_image or at least one crop sampler.')
    if self.max_expand_ratio < 1.0:
      raise ValueError('max_expand_ratio must be >= 1; got %r.'
                       % self.max_expand_ratio)
    if self.crop_max_trials < 1:
      raise ValueError('crop_max_trials must be >= 1; got %r.'
                       % self.crop_max_trials)
    if not 0.0 < self.crop_min_aspect_ratio <= 1.0 <= self.crop_max_aspect_ratio:
      raise ValueError('need 0 < crop_min_aspect_ratio <= 1 <= '
                       'crop_max_aspect_ratio; got %r and %r.'
                       % (self.crop_min_aspect_ratio, self.crop_max_aspect_ratio))


def rgb_constant(mean_rgb):
  """A float32 [3] tensor from 3 values (R, G, B), with a clear error otherwise."""
  values = [float(v) for v in mean_rgb]
  if len(values) != 3:
    raise ValueError('mean_rgb must hold 3 values (R, G, B); got %r.' % (mean_rgb,))
  return tf.constant(values, tf.float32)


# ---------------------------------------------------------------------------------------------
# Expand (zoom out).

def sample_expand(image_size, prob=0.5, max_ratio=4.0, seed=None):
  """Draws the canvas of one expand, in integer pixels (ssd.pytorch's Expand).

  Args:
    image_size: int32 [2] (height, width) of the image.
    prob: probability of expanding; otherwise the canvas is the image itself.
    max_ratio: canvas side = floor(ratio * image side), ratio ~ U[1, max_ratio].
    seed: None, an int or an int tensor [2] (see the module docstring).

  Returns:
    dict with ``expand_offset`` int32 [2] (top, left) of the image in the canvas and
    ``canvas_size`` int32 [2] (height, width).
  """
  coins = tf.random.stateless_uniform([4], as_stateless_seed(seed))
  ratio = tf.where(coins[0] < prob, 1.0 + (max_ratio - 1.0) * coins[1], 1.0)
  size = tf.cast(image_size, tf.float32)
  canvas_size = tf.cast(tf.floor(size * ratio), tf.int32)
  offset = tf.cast(tf.floor(coins[2:] * (size * ratio - size)), tf.int32)
  # floor(s * r - s) == floor(s * r) - s for integer s; the minimum guards float rounding.
  offset = tf.minimum(offset, canvas_size - image_size)
  return {'expand_offset': offset, 'canvas_size': canvas_size}


def expand_boxes(boxes, image_size, expand_offset, canvas_size):
  """Maps boxes normalized to the image to boxes normalized to the expand canvas.

  Args:
    boxes: float32 [num_boxes, 4] normalized to the image.
    image_size, expand_offset, canvas_size: int32 [2] each, as from sample_expand.

  Returns:
    float32 [num_boxes, 4] normalized to the canvas: the same pixels of the object.
  """
  size = tf.tile(tf.cast(image_size, tf.float32), [2])
  offset = tf.tile(tf.cast(expand_offset, tf.float32), [2])
  canvas = tf.tile(tf.cast(canvas_size, tf.float32), [2])
  return (boxes * size + offset) / canvas


def apply_expand(image, boxes, expand_offset, canvas_size, mean_rgb):
  """Places the image on a mean-filled canvas (the materialised expand).

  Args:
    image: float32 [height, width, 3].
    boxes: float32 [num_boxes, 4] normalized to the image.
    expand_offset, canvas_size: int32 [2] each, as from sample_expand.
    mean_rgb: 3 floats, the fill colour (the backbone's mean: zero after mean subtraction).

  Returns:
    (canvas float32 [canvas_height, canvas_width, 3], boxes normalized to the canvas).
  """
  image_size = tf.shape(image)[:2]
  after = canvas_size - image_size - expand_offset
  paddings = tf.stack([tf.stack([expand_offset[0], after[0]]),
                       tf.stack([expand_offset[1], after[1]]), [0, 0]])
  inside = tf.pad(tf.ones(tf.concat([image_size, [1]], 0)), paddings)
  # image + 0 * mean inside (bit-exact pixels), mean outside.
  canvas = tf.pad(image, paddings) + (1.0 - inside) * rgb_constant(mean_rgb)
  return canvas, expand_boxes(boxes, image_size, expand_offset, canvas_size)


def expand(image, boxes, mean_rgb, prob=0.5, max_ratio=4.0, seed=None):
  """Random zoom out: float32 [h, w, 3] and boxes [n, 4] -> canvas and boxes on the canvas."""
  params = sample_expand(tf.shape(image)[:2], prob, max_ratio, seed)
  return apply_expand(image, boxes, params['expand_offset'], params['canvas_size'], mean_rgb)


# ---------------------------------------------------------------------------------------------
# Random crop: Caffe's batch samplers.

def _candidate_patches(canvas_size, shape, config, seed):
  """Draws patches as Caffe's SampleBBox, snapped to whole pixels.

  Args:
    canvas_size: int32 [2] (height, width).
    shape: leading shape of the draws, e.g. [num_samplers, num_trials].
    config: a GeometricConfig (scale and aspect-ratio ranges).
    seed: an int tensor [2].

  Returns:
    int32 [*shape, 4] rects (y0, x0, y1, x1), end exclusive, inside the canvas.
  """
  draws = tf.random.stateless_uniform(list(shape) + [4], seed)
  scale = config.crop_min_scale + (config.crop_max_scale - config.crop_min_scale) * draws[..., 0]
  low = tf.maximum(config.crop_min_aspect_ratio, tf.square(scale))
  high = tf.minimum(config.crop_max_aspect_ratio, 1.0 / tf.square(scale))
  aspect = low + (high - low) * draws[..., 1]
  side = tf.stack([scale / tf.sqrt(aspect), scale * tf.sqrt(aspect)], -1)   # (h, w), <= 1
  corner = draws[..., 2:] * (1.0 - side)
  size = tf.cast(canvas_size, tf.float32)
  start = tf.floor(corner * size)
  end = tf.clip_by_value(tf.floor((corner + side) * size), start + 1.0, size)
  return tf.cast(tf.concat([start, end], axis=-1), tf.int32)


def sample_crop(boxes, canvas_size, config=GeometricConfig(), seed=None):
  """Draws one crop as the authors' Caffe data layer does, all trials at once (no loop).

  Every sampler (crop_min_ious[k], crop_max_ious[k]) tries crop_max_trials patches
  (_candidate_patches) and keeps its first that some box overlaps with an IoU in
  [min, max]; the whole canvas is one more sample when crop_whole_image. One of the collected
  samples is chosen uniformly (GenerateBatchSamples, then a random index). Boxes whose centre
  lies in the patch (Caffe's CENTER emit constraint, edges included) are kept; the patch need
  not contain any, and then the image has no object left (Caffe trains on it: no positive,
  no mined negative).

  Args:
    boxes: float32 [num_boxes, 4] normalized to the canvas.
    canvas_size: int32 [2] (height, width) of the canvas in pixels.
    config: a GeometricConfig.
    seed: None, an int or an int tensor [2] (see the module docstring).

  Returns:
    dict: ``crop_rect`` int32 [4] (y0, x0, y1, x1) canvas pixels, end exclusive;
    ``crop_patch`` float32 [4] the same normalized to the canvas; ``crop_keep`` bool
    [num_boxes], boxes whose centre is inside; debug outputs ``crop_sampler`` int32 (index
    into crop_min_ious, -1 = the whole canvas) and ``crop_found`` bool (False: whole canvas).
  """
  choice_seed, trial_seed = split_seed(seed, 2)
  num_samplers = len(config.crop_min_ious)
  whole = tf.concat([[0, 0], canvas_size], 0)
  normalizer = tf.tile(tf.cast(canvas_size, tf.float32), [2])
  if num_samplers:
    rects = _candidate_patches(canvas_size, [num_samplers, config.crop_max_trials], config,
                               trial_seed)
    iou = boxes_lib.iou(tf.reshape(tf.cast(rects, tf.float32) / normalizer, [-1, 4]), boxes)
    iou = tf.reshape(iou, [num_samplers, config.crop_max_trials, -1])
    low = tf.constant(config.crop_min_ious, tf.float32)[:, None, None]
    high = tf.constant(config.crop_max_ious, tf.float32)[:, None, None]
    satisfied = tf.reduce_any((iou >= low) & (iou <= high), axis=2)       # [S, T]
    found = tf.reduce_any(satisfied, axis=1)                              # [S]
    first = tf.argmax(tf.cast(satisfied, tf.int32), axis=1, output_type=tf.int32)
    samples = tf.gather(rects, first, batch_dims=1)                       # [S, 4]
  else:
    found, samples = tf.zeros([0], tf.bool), tf.zeros([0, 4], tf.int32)
  collected = tf.concat([[config.crop_whole_image], found], 0)            # [1 + S]
  samples = tf.concat([whole[None], samples], 0)
  count = tf.reduce_sum(tf.cast(collected, tf.int32))
  # With no whole-image sampler and no success, Caffe keeps the (expanded) image as it is.
  pick = tf.random.stateless_uniform([], choice_seed, 0, tf.maximum(count, 1), dtype=tf.int32)
  is_pick = collected & tf.equal(tf.cumsum(tf.cast(collected, tf.int32)) - 1, pick)
  chosen = tf.where(count > 0, tf.argmax(tf.cast(is_pick, tf.int32), output_type=tf.int32), 0)
  rect = samples[chosen]
  patch = tf.cast(rect, tf.float32) / normalizer
  centre_y, centre_x, _, _ = boxes_lib.corners_to_center(boxes)
  keep = ((centre_y >= patch[0]) & (centre_y <= patch[2]) &
          (centre_x >= patch[1]) & (centre_x <= patch[3]))
  return {
      'crop_rect': rect,
      'crop_patch': patch,
      'crop_keep': keep,
      'crop_sampler': chosen - 1,
      'crop_found': chosen > 0,
  }


def apply_crop(image, boxes, labels, crop_rect, crop_keep):
  """Cuts the patch (the materialised crop); keeps the chosen boxes, clipped to the patch.

  Args:
    image: [height, width, 3] canvas.
    boxes: float32 [num_boxes, 4] normalized to the canvas.
    labels: [num_boxes] any dtype, aligned with boxes.
    crop_rect: int32 [4] (y0, x0, y1, x1) pixels; crop_keep: bool [num_boxes].

  Returns:
    (image [y1 - y0, x1 - x0, 3], boxes float32 [num_kept, 4] normalized to the patch,
    labels [num_kept]).
  """
  size = tf.tile(tf.cast(tf.shape(image)[:2], tf.float32), [2])
  rect = tf.cast(crop_rect, tf.float32)
  patch = tf.slice(image, tf.concat([crop_rect[:2], [0]], 0),
                   tf.concat([crop_rect[2:] - crop_rect[:2], [-1]], 0))
  # In pixels as ssd.pytorch: clip to the rect, shift to its origin, divide by its size.
  pixels = tf.clip_by_value(boxes * size, tf.tile(rect[:2], [2]), tf.tile(rect[2:], [2]))
  patch_size = tf.tile(rect[2:] - rect[:2], [2])
  new_boxes = (pixels - tf.tile(rect[:2], [2])) / patch_size
  return (patch, tf.boolean_mask(new_boxes, crop_keep), tf.boolean_mask(labels, crop_keep))


def random_crop_with_constraints(image, boxes, labels, config=GeometricConfig(), seed=None):
  """Random crop (see sample_crop) of image [h, w, 3] with boxes [n, 4], labels [n].

  Returns:
    (image [ph, pw, 3], boxes float32 [m, 4], labels [m], info) where info is the dict of
    sample_crop (the chosen patch, sampler, ...) for inspection.
  """
  info = sample_crop(boxes, tf.shape(image)[:2], config, seed)
  image, boxes, labels = apply_crop(image, boxes, labels, info['crop_rect'], info['crop_keep'])
  return image, boxes, labels, info


# ---------------------------------------------------------------------------------------------
# Flip and resize.

def sample_flip(prob=0.5, seed=None):
  """Draws a bool scalar tensor: True with probability ``prob``."""
  return tf.random.stateless_uniform([], as_stateless_seed(seed)) < prob


def apply_flip(image, boxes, flip):
  """Mirrors image [h, w, c] and boxes [n, 4] left-right if the bool scalar ``flip`` is True."""
  image = tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)
  return image, tf.where(flip, boxes_lib.flip_left_right(boxes), boxes)


def random_flip_left_right(image, boxes, prob=0.5, seed=None):
  """Horizontal flip with probability ``prob``: image [h, w, c], boxes [n, 4] -> same shapes."""
  return apply_flip(image, boxes, sample_flip(prob, seed))


def resize(image, boxes, out_size):
  """Bilinear resize to out_size (height, width), aspect not kept (SSD's warp).

  Args:
    image: [height, width, 3] any real dtype.
    boxes: float32 [num_boxes, 4] normalized; unchanged, since normalized coordinates scale
      with the image.
    out_size: (out_height, out_width) ints.

  Returns:
    (float32 [out_height, out_width, 3], boxes). Half-pixel centres, no antialiasing, like
    cv2.resize INTER_LINEAR in the reference implementations.
  """
  resized = tf.image.resize(image, out_size, method=tf.image.ResizeMethod.BILINEAR)
  return tf.cast(resized, tf.float32), boxes


# ---------------------------------------------------------------------------------------------
# Fast path: expand + crop + flip + resize as one resampling of the original image.

def crop_rect_in_image(expand_offset, crop_rect):
  """The expand canvas crop as int32 [4] (y0, x0, y1, x1) pixels of the ORIGINAL image.

  Args:
    expand_offset: int32 [2] (top, left) of the image in the canvas.
    crop_rect: int32 [4] (y0, x0, y1, x1) canvas pixels, end exclusive.

  Returns:
    int32 [4]; negative or beyond the image size where the patch covers canvas.
  """
  return crop_rect - tf.tile(expand_offset, [2])


def crop_window_in_image(image_size, expand_offset, crop_rect):
  """The expand canvas crop, as a window normalized to the ORIGINAL image.

  Args:
    image_size: int32 [2] (height, width) of the original image.
    expand_offset: int32 [2] (top, left) of the image in the canvas.
    crop_rect: int32 [4] (y0, x0, y1, x1) canvas pixels.

  Returns:
    float32 [4] [ymin, xmin, ymax, xmax]; outside [0, 1] where the patch covers canvas.
  """
  rect = tf.cast(crop_rect_in_image(expand_offset, crop_rect), tf.float32)
  return rect / tf.tile(tf.cast(image_size, tf.float32), [2])


def _replicate_border(image):
  """Pads [h, w, c] by one edge-replicating pixel on each side ([h + 2, w + 2, c]).

  Done with concat on the input dtype: tf.pad's SYMMETRIC mode is ~10x slower here.
  """
  image = tf.concat([image[:1], image, image[-1:]], axis=0)
  return tf.concat([image[:, :1], image, image[:, -1:]], axis=1)


def _span_on_image(edge_start, edge_end, num_out, size):
  """One axis of the fast path: which output pixels sample the image, and where.

  Output pixel i (of num_out spanning input edges [edge_start, edge_end]) has its centre at
  edge_start + (i + 0.5) * (edge_end - edge_start) / num_out, in input edge units (pixel j
  covers [j, j + 1]); it belongs to the image iff that centre lies in [0, size].

  Returns:
    (num_before int32: output pixels before the image, num_on int32: pixels on it,
    first, last float32: where the first and last of those sample the image, in pixel-index
    units (centre - 0.5, so in [-0.5, size - 0.5])).
  """
  centres = edge_start + (tf.range(num_out, dtype=tf.float32) + 0.5) * (
      (edge_end - edge_start) / num_out)
  num_before = tf.reduce_sum(tf.cast(centres < 0.0, tf.int32))
  num_after = tf.reduce_sum(tf.cast(centres > size, tf.int32))
  num_on = num_out - num_before - num_after
  first = tf.gather(centres, tf.minimum(num_before, num_out - 1))
  last = tf.gather(centres, tf.clip_by_value(num_before + num_on - 1, 0, num_out - 1))
  return num_before, num_on, first - 0.5, last - 0.5


def _sampled_region(image, first, last):
  """The part of the image that samples at pixel indices [first, last] read, padded by one.

  Args:
    image: [height, width, 3]; first, last: float32 [2] (y, x) pixel indices, first <= last.

  Returns:
    (float32 [rows + 2, cols + 2, 3]: pixels floor(first) .. ceil(last), clamped to the image,
    with one edge-replicating pixel around; float32 [2] index of its pixel 0 in the image).
  """
  size = tf.shape(image)[:2]
  start = tf.clip_by_value(tf.cast(tf.floor(first), tf.int32), 0, size - 1)
  stop = tf.clip_by_value(tf.cast(tf.math.ceil(last), tf.int32), start, size - 1) + 1
  region = tf.slice(image, tf.concat([start, [0]], 0), tf.concat([stop - start, [-1]], 0))
  # Slice first so that only the pixels read are converted; float because crop_and_resize's
  # uint8 kernel is about 2x slower than a cast plus its float kernel.
  return tf.cast(_replicate_border(region), tf.float32), tf.cast(start, tf.float32) - 1.0


def _resize_inside(image, rect, out_size, flip):
  """crop_and_resize_rect for a rect inside the image: the reference's slice + resize.

  ResizeBilinear is ~2.5x faster than crop_and_resize on CPU, so the common case (no
  expand) takes it.
  """
  region = tf.slice(image, tf.concat([rect[:2], [0]], 0),
                    tf.concat([rect[2:] - rect[:2], [-1]], 0))
  pixels = tf.image.resize(tf.cast(region, tf.float32), out_size)
  pixels = tf.cond(flip, lambda: tf.reverse(pixels, [1]), lambda: pixels)
  return pixels, tf.zeros([3, 2], tf.int32)


def _crop_and_resize_beyond(image, rect, out_size, flip):
  """crop_and_resize_rect for a rect reaching beyond the image (see there)."""
  out_h, out_w = out_size
  size = tf.cast(tf.shape(image)[:2], tf.float32)
  edges = tf.cast(rect, tf.float32)
  top, rows, y_first, y_last = _span_on_image(edges[0], edges[2], out_h, size[0])
  left, cols, x_first, x_last = _span_on_image(edges[1], edges[3], out_w, size[1])
  region, origin = _sampled_region(image, tf.stack([y_first, x_first]),
                                   tf.stack([y_last, x_last]))
  # crop_and_resize maps normalized v of the region to index v * (region size - 1).
  extent = tf.cast(tf.shape(region)[:2], tf.float32) - 1.0
  first = (tf.stack([y_first, x_first]) - origin) / extent
  last = (tf.stack([y_last, x_last]) - origin) / extent
  x_first, x_last = tf.where(flip, last[1], first[1]), tf.where(flip, first[1], last[1])
  right = out_w - left - cols
  left, right = tf.where(flip, right, left), tf.where(flip, left, right)
  # crop_and_resize needs a positive size; a rect that misses every pixel centre of the
  # image (possible only for slivers) yields 0 rows or columns after the slice.
  crop_size = tf.maximum(tf.stack([rows, cols]), 1)
  box = tf.stack([first[0], x_first, last[0], x_last])
  pixels = tf.image.crop_and_resize(region[None], box[None], [0], crop_size)[0][:rows, :cols]
  paddings = tf.stack([tf.stack([top, out_h - top - rows]), tf.stack([left, right]), [0, 0]])
  return pixels, paddings


def crop_and_resize_rect(image, rect, out_size, flip=False):
  """Samples a pixel rect of the image onto an out_size grid; returns only the on-image part.

  The fast path's single resampling. Together with a zero pad by ``paddings`` it equals
  resize(crop(expand(image))) on the mean-subtracted scale (the canvas is 0 there), with the
  same half-pixel bilinear sampling. A rect inside the image is sliced and resized: exactly
  the reference. A rect reaching beyond it (expand) goes through crop_and_resize of just the
  pixels the samples read; differences from the reference there: an output pixel is image or
  canvas by whether its centre lies on the image (the reference blends both over the one
  output pixel at that seam), and sampling near a crop edge inside the image reads the
  neighbouring pixels instead of clamping (a one-pixel edge-replicating pad reproduces the
  clamping at the image's own border).

  Args:
    image: [height, width, 3] uint8 or float32, RGB 0-255.
    rect: int32 [4] (y0, x0, y1, x1) pixels of the image, end exclusive, y1 > y0, x1 > x0;
      may reach outside [0, height] x [0, width].
    out_size: (out_height, out_width) ints.
    flip: bool scalar tensor: mirror left-right.

  Returns:
    (pixels float32 [rows, cols, 3]: the output pixels whose centre is on the image,
    paddings int32 [3, 2]: where they sit in the [out_height, out_width, 3] output, as for
    tf.pad).
  """
  flip = tf.convert_to_tensor(flip, tf.bool)
  size = tf.shape(image)[:2]
  inside = tf.reduce_all(rect[:2] >= 0) & tf.reduce_all(rect[2:] <= size)
  return tf.cond(inside, lambda: _resize_inside(image, rect, out_size, flip),
                 lambda: _crop_and_resize_beyond(image, rect, out_size, flip))


def sample_geometric_params(image_size, boxes, config=GeometricConfig(), seed=None):
  """Draws expand, crop and flip for one image.

  Args:
    image_size: int32 [2] (height, width).
    boxes: float32 [num_boxes, 4] normalized to the image.
    config: a GeometricConfig.
    seed: None, an int or an int tensor [2] (see the module docstring).

  Returns:
    dict: the keys of sample_expand and sample_crop (crop in canvas pixels) and ``flip``
    (bool scalar).
  """
  expand_seed, crop_seed, flip_seed = split_seed(seed, 3)
  params = sample_expand(image_size, config.expand_prob, config.max_expand_ratio, expand_seed)
  canvas_boxes = expand_boxes(boxes, image_size, params['expand_offset'], params['canvas_size'])
  params.update(sample_crop(canvas_boxes, params['canvas_size'], config, crop_seed))
  params['flip'] = sample_flip(config.flip_prob, flip_seed)
  return params
