"""Pluggable augmentation ops: one class each, seeded per image, settings as flags."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from dataset import input_fn
from net import model_spec
from preprocessing import augmentation_ops
from preprocessing import ssd_preprocessing
from tests.conftest import tiny_config
from tests.graph_test_util import execute
from utility import config as config_lib
from utility import image_convention
from utility import ssd_flags

tf1 = tf.compat.v1


class VerticalFlip(augmentation_ops.AugmentationOp):
  """A contributor's op, defined and registered here without editing the project."""

  name = 'test_vertical_flip'

  @dataclasses.dataclass(frozen=True)
  class Settings:
    probability: float = 0.5

  def sample(self, settings, seed, image_shape, boxes):
    return {'flip': tf.random.stateless_uniform([], seed) < settings.probability}

  def apply(self, image, boxes, labels, params):
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    flipped = tf.stack([1.0 - ymax, xmin, 1.0 - ymin, xmax], axis=-1)
    return (tf.where(params['flip'], tf.reverse(image, [0]), image),
            tf.where(params['flip'], flipped, boxes), labels)


augmentation_ops.register(VerticalFlip())
BOXES = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.0, 1.0, 0.5]], np.float32)
LABELS = np.array([1, 2], np.int64)


def _image():
  y, x = np.mgrid[0:40, 0:48]
  return np.stack([x * 5, y * 6, (x + y) * 2], -1).astype(np.uint8)


def test_a_registered_op_runs_from_its_settings_with_hand_computed_boxes():
  resolved = augmentation_ops.resolve(('test_vertical_flip',),
                                      ('test_vertical_flip.probability=1.0',))
  assert resolved[0][1] == VerticalFlip.Settings(probability=1.0)
  image = _image().astype(np.float32)
  out_image, out_boxes, out_labels = execute(
      lambda i, b, l: augmentation_ops.apply_all(resolved, i, b, l, tf.constant([3, 4],
                                                                                  tf.int64)),
      image, BOXES, LABELS)
  np.testing.assert_allclose(out_boxes, [[0.7, 0.2, 0.9, 0.4], [0.0, 0.0, 0.5, 0.5]], atol=1e-6)
  np.testing.assert_array_equal(out_image, image[::-1])
  np.testing.assert_array_equal(out_labels, LABELS)


def test_the_op_comes_before_the_recipe_whose_draws_stay_the_same():
  # Flipping inside the pipeline equals feeding the flipped image: the recipe's own random
  # values do not move when an op is added (each op's seed is folded from the image's).
  convention = image_convention.ImageConvention((123.68, 116.78, 103.94))
  flip = augmentation_ops.resolve(('test_vertical_flip',), ('test_vertical_flip.probability=1',))
  flipped_boxes = np.array([[0.7, 0.2, 0.9, 0.4], [0.0, 0.0, 0.5, 0.5]], np.float32)
  difficult = np.zeros(2, np.int64)
  for seed in (1, 2, 3):
    with_op = execute(lambda i, b, l, d: ssd_preprocessing.preprocess_for_train(
        i, b, l, d, convention, (32, 32), seed=tf.constant([seed, 0], tf.int64),
        extra_ops=flip), _image(), BOXES, LABELS, difficult)
    by_hand = execute(lambda i, b, l, d: ssd_preprocessing.preprocess_for_train(
        i, b, l, d, convention, (32, 32), seed=tf.constant([seed, 0], tf.int64)),
        _image()[::-1].copy(), flipped_boxes, LABELS, difficult)
    for a, b in zip(with_op, by_hand):
      np.testing.assert_allclose(a, b, atol=1e-4)


def test_grayscale_makes_equal_channels_of_the_luma():
  resolved = augmentation_ops.resolve(('grayscale',), ('grayscale.probability=1',))
  pixel = np.array([[[200.0, 100.0, 50.0]]], np.float32)
  out, _, _ = execute(lambda i, b, l: augmentation_ops.apply_all(
      resolved, i, b, l, tf.constant([0, 0], tf.int64)), pixel, BOXES, LABELS)
  luma = 0.299 * 200 + 0.587 * 100 + 0.114 * 50
  np.testing.assert_allclose(out[0, 0], [luma] * 3, rtol=1e-6)


def test_flags_select_the_ops_and_the_training_pipeline_runs_them(tiny_records):
  values = flags.FlagValues()
  ssd_flags.define_config_flags(flag_values=values)
  values(['prog', '--extra_augmentations=grayscale',
          '--augmentation_options=grayscale.probability=1.0', '--expand_probability=0'])
  built = ssd_flags.config_from_flags(values)
  assert built.input.extra_augmentations == ('grayscale',)
  assert built.input.augmentation_options == ('grayscale.probability=1.0',)
  config = dataclasses.replace(tiny_config(), input=dataclasses.replace(
      tiny_config().input, extra_augmentations=('grayscale',),
      augmentation_options=('grayscale.probability=1.0',), expand_probability=0.0))
  inputs = model_spec.model_inputs(config.model)
  samples = input_fn.sample_training_batch(os.path.join(tiny_records['records'], 'train-*'),
                                           config, inputs, 4, seed=3)
  pixels = inputs.convention.to_rgb_pixels_numpy(samples['image'])
  # Gray in, gray out: the recipe's colour distortions keep a gray image gray.
  np.testing.assert_allclose(pixels[..., 0], pixels[..., 1], atol=1e-2)
  np.testing.assert_allclose(pixels[..., 1], pixels[..., 2], atol=1e-2)


@pytest.mark.parametrize('ops, options, message', [
    (('sharpen',), (), "Unknown --extra_augmentations entry 'sharpen': use one of grayscale"),
    (('grayscale',), ('grayscale.amount=2',), "grayscale has no setting 'amount'"),
    (('grayscale',), ('grayscale.probability=high',), "'grayscale.probability=high': could "
                                                      'not convert'),
    ((), ('grayscale.probability=1',), "is for 'grayscale', which is not in "
                                       '--extra_augmentations'),
    (('grayscale',), ('probability=1',), 'must read <op>.<setting>=<value>'),
])
def test_bad_augmentation_settings_name_the_flag(ops, options, message):
  with pytest.raises(ValueError, match=message):
    augmentation_ops.resolve(ops, options)
  config = config_lib.SSDConfig(input=config_lib.InputConfig(extra_augmentations=ops,
                                                             augmentation_options=options))
  from net import validation
  with pytest.raises(ValueError, match=message):
    validation.validate(config)
