"""SSD preprocessing: the training augmentation (docs/RECIPE.md, "Augmentation") and eval resize.

Input per image, as the TFRecord decoder yields it: ``image`` uint8 [height, width, 3] RGB,
``boxes`` float32 [num_boxes, 4] [ymin, xmin, ymax, xmax] normalized, ``labels`` int64
[num_boxes], ``difficult`` int64 [num_boxes]. Output: float32 [out_height, out_width, 3] with
the backbone's mean subtracted (and its channel order), boxes normalized to the output with
positive size, labels aligned with them.

Training recipe (SSD paper section 3.6, Caffe / ssd.pytorch): photometric distortion, expand
onto a mean-filled canvas, min-IoU crop, horizontal flip, resize, mean subtraction. Two
implementations driven by the same draws (``sample_augmentation_params``):

* ``ssd_preprocess_reference`` runs the steps literally, materialising the full-size
  distorted image and the expanded canvas (up to 16x the pixels).
* ``apply_augmentation`` (the fast path, used by default) composes expand and crop
  analytically into one rectangle of the original image and produces the output with ONE
  bilinear resampling of the output pixels whose centre lies on the image (a rectangle);
  the rest of the output is the mean colour (0 after mean subtraction, a zero pad). The colour
  distortion runs on that small rectangle only, because in the recipe the distortion happens
  before the expand and the canvas stays the plain mean colour.

Why the fast path has the recipe's output distribution: the random draws are the same
function of the same seed in both paths, so every draw (colour, canvas, patch, flip) and every
output box is identical (checked in tests). The images differ only by the order of two
per-pixel operations: the reference interpolates distorted pixels, the fast path distorts
interpolated pixels. Brightness, contrast (Caffe's x * factor) and channel swap are affine per
pixel and commute with the bilinear weights exactly (up to the [0, 255] clipping); saturation
and hue are continuous per-pixel maps, so the difference is bounded by how much the up to 4
neighbours that are blended differ, and vanishes on flat regions. Geometry: when the patch lies
inside the image (always without expand) the fast path runs the reference's own slice + resize,
so without colour ops the images are identical (tested). When it reaches the canvas, the
differences are one output pixel wide: the seam between image and canvas, and crop edges inside
the image (the reference clamps at the patch border, the fast path reads the next pixel).
Measured on a smooth 48x64 test image: mean absolute difference 0.2 (worst image 1.5) on the
0-255 scale.

Reproducibility in tf.data: the random ops are stateless (``tf.random.stateless_*``) and take a
per-image seed tensor [2]. Give each element its own seed independent of thread scheduling,
e.g. ``tf.data.Dataset.zip((dataset, tf.data.Dataset.random(seed=S).batch(2)))`` and pass the
second component as ``seed``; then map with any ``num_parallel_calls`` gives the same samples
run after run. ``seed=None`` draws a fresh seed per call from the stateful generator (random,
not reproducible). A Python int is a constant seed: the same draw for every image (tests).
"""

import tensorflow as tf

from preprocessing import augmentation_ops
from preprocessing import geometric
from preprocessing import photometric
from utility import boxes as boxes_lib

def drop_difficult_objects(boxes, labels, difficult):
  """Leaves difficult objects out of the training targets (docs/RECIPE.md, "Matching and encoding").

  An image whose objects are ALL difficult keeps them, rather than becoming an all-background
  image.

  Args:
    boxes: float32 [num_boxes, 4]; labels: [num_boxes]; difficult: int [num_boxes], 1 = difficult.

  Returns:
    (boxes [num_kept, 4], labels [num_kept]).
  """
  keep = tf.equal(difficult, 0)
  keep = keep | tf.logical_not(tf.reduce_any(keep))
  return tf.boolean_mask(boxes, keep), tf.boolean_mask(labels, keep)


def sample_augmentation_params(image_size, boxes, seed=None,
                               photometric_config=photometric.PhotometricConfig(),
                               geometric_config=geometric.GeometricConfig()):
  """Draws every random value of one training augmentation.

  Args:
    image_size: int32 [2] (height, width) of the original image.
    boxes: float32 [num_boxes, 4] normalized to the original image.
    seed: None, a Python int or an int tensor [2] (module docstring).
    photometric_config, geometric_config: the recipe's settings.

  Returns:
    dict of tensors: the keys of photometric.sample_photometric_params and
    geometric.sample_geometric_params (including the debug outputs crop_patch, crop_sampler,
    crop_found).
  """
  photometric_seed, geometric_seed = photometric.split_seed(seed, 2)
  params = photometric.sample_photometric_params(photometric_config, photometric_seed)
  params.update(geometric.sample_geometric_params(image_size, boxes, geometric_config,
                                                  geometric_seed))
  return params


def apply_augmentation(image, boxes, labels, params, convention, out_size=(300, 300)):
  """The fast path: one resampling, colour distortion on the output (module docstring).

  Args:
    image: uint8 (or float32 0-255) [height, width, 3] RGB.
    boxes: float32 [num_boxes, 4] normalized; labels: [num_boxes] aligned with boxes.
    params: dict from sample_augmentation_params for this image and these boxes.
    convention: the backbone's utility.image_convention.ImageConvention; its mean is also the
      canvas colour.
    out_size: (out_height, out_width).

  Returns:
    (image float32 [out_height, out_width, 3] in the convention, boxes float32 [num_kept, 4]
    normalized to the output, labels [num_kept]).
  """
  # The same boxes as expand + crop + flip, in one change of frame to the window.
  window = geometric.crop_window_in_image(tf.shape(image)[:2], params['expand_offset'],
                                          params['crop_rect'])
  out_boxes = boxes_lib.change_coordinate_frame(boxes, window)
  out_boxes = tf.boolean_mask(tf.clip_by_value(out_boxes, 0.0, 1.0), params['crop_keep'])
  out_boxes = tf.where(params['flip'], boxes_lib.flip_left_right(out_boxes), out_boxes)
  rect = geometric.crop_rect_in_image(params['expand_offset'], params['crop_rect'])
  pixels, paddings = geometric.crop_and_resize_rect(image, rect, out_size, params['flip'])
  # Only pixels from the image are distorted (the recipe distorts before expanding), and the
  # canvas is 0 = the mean colour after normalisation.
  pixels = convention.normalize(photometric.distort_color(pixels, params))
  out_image = tf.pad(pixels, paddings)
  out_image.set_shape([out_size[0], out_size[1], 3])
  return out_image, out_boxes, tf.boolean_mask(labels, params['crop_keep'])


def ssd_preprocess_reference(image, boxes, labels, params, convention, out_size=(300, 300)):
  """The recipe step by step, materialising the full image and canvas (same args as the fast path).

  Photometric distortion of the full image -> expand -> crop -> flip -> resize -> mean
  subtraction. Slow; kept to check the fast path and as the readable statement of the recipe.
  """
  image = photometric.distort_color(tf.cast(image, tf.float32), params)
  image, boxes = geometric.apply_expand(image, boxes, params['expand_offset'],
                                        params['canvas_size'], convention.mean_rgb)
  image, boxes, labels = geometric.apply_crop(image, boxes, labels, params['crop_rect'],
                                              params['crop_keep'])
  image, boxes = geometric.apply_flip(image, boxes, params['flip'])
  image, boxes = geometric.resize(image, boxes, out_size)
  image = convention.normalize(image)
  image.set_shape([out_size[0], out_size[1], 3])
  return image, boxes, labels


def preprocess_for_train(image, boxes, labels, difficult, convention, out_size=(300, 300),
                         use_difficult=False, seed=None,
                         photometric_config=photometric.PhotometricConfig(),
                         geometric_config=geometric.GeometricConfig(), fast=True,
                         extra_ops=()):
  """Training augmentation of one decoded image; usable in Dataset.map(num_parallel_calls).

  As in the authors' Caffe data layer, a crop may keep no box (no box centre inside it); the
  image then comes out with zero boxes and trains as all background, which with hard negative
  mining relative to the positives means it adds no loss. An image that has no box to begin
  with comes out with zero boxes too (the input_fn filters those before augmenting).

  Args:
    image: uint8 [height, width, 3] RGB.
    boxes: float32 [num_boxes, 4] normalized [ymin, xmin, ymax, xmax].
    labels: int64 [num_boxes], 1..num_classes - 1.
    difficult: int64 [num_boxes], 1 for VOC "difficult" objects.
    convention: the backbone's ImageConvention (net.model_spec.image_convention).
    out_size: (out_height, out_width) of the network input.
    use_difficult: keep difficult objects as targets (default: drop them, as the TF port;
      Caffe keeps them).
    seed: None, a Python int or an int tensor [2] (module docstring).
    photometric_config, geometric_config: the recipe's settings.
    fast: use apply_augmentation (True) or ssd_preprocess_reference (False).
    extra_ops: [(AugmentationOp, settings)] of preprocessing.augmentation_ops.resolve, run
      first on the decoded image with seeds folded from this image's seed.

  Returns:
    (image float32 [out_height, out_width, 3] in the convention, boxes float32 [num_out, 4]
    normalized to the output with positive size, labels int64 [num_out], num_boxes int32
    scalar = num_out).
  """
  if not use_difficult:
    boxes, labels = drop_difficult_objects(boxes, labels, difficult)
  if extra_ops:
    seed = photometric.as_stateless_seed(seed)  # one seed for the extra ops and the recipe
    image, boxes, labels = augmentation_ops.apply_all(extra_ops, tf.cast(image, tf.float32),
                                                      boxes, labels, seed)
  params = sample_augmentation_params(tf.shape(image)[:2], boxes, seed, photometric_config,
                                      geometric_config)
  augment = apply_augmentation if fast else ssd_preprocess_reference
  image, boxes, labels = augment(image, boxes, labels, params, convention, out_size)
  return image, boxes, labels, tf.shape(boxes)[0]


def preprocess_for_eval(image, out_size, convention):
  """Eval preprocessing: bilinear resize (aspect not kept) and the backbone's normalisation only.

  Args:
    image: uint8 [height, width, 3] RGB.
    out_size: (out_height, out_width).
    convention: the backbone's utility.image_convention.ImageConvention.

  Returns:
    float32 [out_height, out_width, 3]. Normalized boxes need no change.
  """
  image, _ = geometric.resize(image, tf.zeros([0, 4]), out_size)
  image = convention.normalize(image)
  image.set_shape([out_size[0], out_size[1], 3])
  return image


def augmentation_configs(input_config):
  """(PhotometricConfig, GeometricConfig) of the training augmentation for an InputConfig.

  Raises:
    ValueError: naming the flag, for settings the augmentation cannot take.
  """
  try:
    return _augmentation_configs(input_config)
  except ValueError as error:
    raise ValueError('Augmentation flags: %s' % error) from None


def _augmentation_configs(input_config):
  photometric_config = photometric.PhotometricConfig(
      prob=input_config.photometric_probability,
      brightness_max_delta=input_config.brightness_max_delta,
      contrast_range=tuple(input_config.contrast_range),
      saturation_range=tuple(input_config.saturation_range),
      hue_max_delta=input_config.hue_max_delta_degrees / 360.0,
      channel_swap_prob=0.5 if input_config.channel_swap else 0.0)
  geometric_config = geometric.GeometricConfig(
      expand_prob=input_config.expand_probability,
      max_expand_ratio=input_config.max_expand_ratio,
      crop_min_ious=tuple(input_config.crop_min_ious),
      crop_max_ious=tuple(input_config.crop_max_ious),
      crop_whole_image=input_config.crop_whole_image,
      crop_max_trials=input_config.crop_max_trials,
      crop_min_scale=input_config.crop_min_scale, crop_max_scale=input_config.crop_max_scale,
      crop_min_aspect_ratio=input_config.crop_min_aspect_ratio,
      crop_max_aspect_ratio=input_config.crop_max_aspect_ratio,
      flip_prob=input_config.flip_probability)
  return photometric_config, geometric_config
