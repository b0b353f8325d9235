"""Pluggable augmentation ops, run on each decoded training image before the SSD augmentation.

The recipe's augmentation (photometric distortion, zoom out, the Caffe crop sampler, flip;
preprocessing/ssd_preprocessing.py) is fixed by the paper and fused into one resampling for
speed. Anything else is an ``AugmentationOp``: one class with

  * ``name``: what ``--extra_augmentations`` lists (ops run in that order);
  * ``Settings``: a frozen dataclass of its numbers, each with a default; set on the command
    line as ``--augmentation_options=<name>.<field>=<value>,...`` and saved with the rest of
    the settings in model_dir;
  * ``sample(settings, seed, image_shape, boxes)``: every random value of one application,
    from a stateless per-image seed (int tensor [2]), so a seeded run reproduces its samples
    whatever the thread scheduling;
  * ``apply(image, boxes, labels, params)``: the op itself on float32 RGB [h, w, 3] in [0, 255]
    with normalized [ymin, xmin, ymax, xmax] boxes; returns (image, boxes, labels).

``register(op)`` adds one (a user's module or a test) without editing any file here. Each op's
seed is the image's seed folded with the op's position, so adding an op leaves the recipe's own
draws unchanged.
"""

import dataclasses

import tensorflow as tf

_REGISTRY = {}


class AugmentationOp:
  """Base class; see the module docstring."""

  name = ''

  @dataclasses.dataclass(frozen=True)
  class Settings:
    pass

  def sample(self, settings, seed, image_shape, boxes):
    raise NotImplementedError

  def apply(self, image, boxes, labels, params):
    raise NotImplementedError


def register(op):
  """Adds an AugmentationOp instance under op.name; returns it."""
  if not isinstance(op, AugmentationOp) or not op.name:
    raise TypeError('register() takes an AugmentationOp instance with a name, got %r.' % (op,))
  _REGISTRY[op.name] = op
  return op


def names():
  return sorted(_REGISTRY)


def get(name):
  """The registered op `name`; ValueError naming --extra_augmentations otherwise."""
  if name not in _REGISTRY:
    raise ValueError('Unknown --extra_augmentations entry %r: use one of %s.'
                     % (name, ', '.join(names()) or 'none registered'))
  return _REGISTRY[name]


def _parse_value(text, default):
  if isinstance(default, bool):
    if text.lower() not in ('true', 'false', '1', '0'):
      raise ValueError('expected true or false, got %r' % text)
    return text.lower() in ('true', '1')
  return type(default)(text)


def resolve(extra_augmentations, augmentation_options):
  """[(op, settings)] for InputConfig.extra_augmentations and .augmentation_options.

  Args:
    extra_augmentations: op names in order, e.g. ('grayscale',).
    augmentation_options: '<name>.<field>=<value>' strings, e.g. ('grayscale.probability=0.2',).

  Raises:
    ValueError: naming the flag and the entry, for an unknown op, field or bad value.
  """
  ops = [get(name) for name in extra_augmentations]
  changes = {name: {} for name in extra_augmentations}
  for option in augmentation_options:
    key, sep, value = option.partition('=')
    name, dot, field = key.partition('.')
    if not sep or not dot:
      raise ValueError('--augmentation_options entry %r must read <op>.<setting>=<value>.'
                       % option)
    if name not in changes:
      raise ValueError('--augmentation_options entry %r is for %r, which is not in '
                       '--extra_augmentations.' % (option, name))
    defaults = {f.name: f.default for f in dataclasses.fields(get(name).Settings)}
    if field not in defaults:
      raise ValueError('--augmentation_options entry %r: %s has no setting %r (it has %s).'
                       % (option, name, field, ', '.join(sorted(defaults)) or 'none'))
    try:
      changes[name][field] = _parse_value(value, defaults[field])
    except ValueError as error:
      raise ValueError('--augmentation_options entry %r: %s.' % (option, error)) from None
  return [(op, op.Settings(**changes[op.name])) for op in ops]


def apply_all(resolved, image, boxes, labels, seed):
  """Runs the resolved ops in order on one image (float32 RGB [h, w, 3] 0-255).

  Args:
    resolved: the list of resolve().
    seed: int tensor [2], the image's stateless seed.

  Returns:
    (image, boxes, labels).
  """
  for position, (op, settings) in enumerate(resolved):
    op_seed = tf.random.experimental.stateless_fold_in(seed, 1000 + position)
    params = op.sample(settings, op_seed, tf.shape(image), boxes)
    image, boxes, labels = op.apply(image, boxes, labels, params)
  return image, boxes, labels


class Grayscale(AugmentationOp):
  """Random grayscale (not in the SSD recipe): with `probability`, every channel becomes the
  ITU-R 601 luma 0.299 R + 0.587 G + 0.114 B; boxes unchanged."""

  name = 'grayscale'

  @dataclasses.dataclass(frozen=True)
  class Settings:
    probability: float = 0.1

  def sample(self, settings, seed, image_shape, boxes):
    del image_shape, boxes
    if not 0 <= settings.probability <= 1:
      raise ValueError('grayscale.probability must be in [0, 1], got %s.'
                       % settings.probability)
    return {'apply': tf.random.stateless_uniform([], seed) < settings.probability}

  def apply(self, image, boxes, labels, params):
    luma = tf.reduce_sum(image * tf.constant([0.299, 0.587, 0.114]), axis=-1, keepdims=True)
    return tf.where(params['apply'], tf.tile(luma, [1, 1, 3]), image), boxes, labels


register(Grayscale())
