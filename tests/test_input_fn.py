import os

import numpy as np
import pytest
import tensorflow as tf

from dataset import input_fn
from net import model_spec
from preprocessing import photometric
from tests.conftest import tiny_config
from utility import box_coder
from utility import config as config_lib

tf1 = tf.compat.v1


def _run(dataset, num_batches):
  with tf.Graph().as_default():
    next_element = tf1.data.make_one_shot_iterator(dataset()).get_next()
    with tf1.Session() as sess:
      return [sess.run(next_element) for _ in range(num_batches)]


def test_train_batches_have_documented_shapes_and_consistent_targets(tiny_records):
  config = tiny_config()
  pattern = os.path.join(tiny_records['records'], 'train-*')
  (features, labels), = _run(lambda: input_fn.train_dataset(
      pattern, config, model_spec.model_inputs(config.model), 4, seed=5), 1)
  num_anchors = model_spec.num_anchors(config.model)
  assert features['image'].shape == (4, 160, 160, 3) and features['image'].dtype == np.float32
  assert labels['cls_targets'].shape == (4, num_anchors) and labels['cls_targets'].dtype == np.int64
  assert labels['loc_targets'].shape == (4, num_anchors, 4)
  assert labels['boxes'].shape == (4, 20, 4) and labels['num_boxes'].dtype == np.int32
  assert (labels['num_boxes'] > 0).all()
  with tf.Graph().as_default(), tf1.Session() as sess:
    anchors = sess.run(model_spec.generate_anchors(config.model))
    decoded = sess.run(box_coder.decode(tf.constant(labels['loc_targets']), tf.constant(anchors)))
  for i in range(4):
    n = labels['num_boxes'][i]
    gt = labels['boxes'][i, :n]
    positives = np.where(labels['cls_targets'][i] > 0)[0]
    assert len(positives) >= n  # every box gets at least its best anchor
    for a in positives:
      # Each positive anchor decodes back to one of the image's boxes, with that box's label.
      match = np.where(np.abs(gt - decoded[i, a]).max(axis=1) < 1e-4)[0]
      assert len(match) >= 1
      assert labels['cls_targets'][i, a] in labels['labels'][i, match]
    assert (labels['loc_targets'][i, labels['cls_targets'][i] <= 0] == 0).all()


def test_same_seed_gives_the_same_batch(tiny_records):
  config = tiny_config()
  pattern = os.path.join(tiny_records['records'], 'train-*')
  inputs = model_spec.model_inputs(config.model)
  first = _run(lambda: input_fn.train_dataset(pattern, config, inputs, 2, seed=11), 2)
  second = _run(lambda: input_fn.train_dataset(pattern, config, inputs, 2, seed=11), 2)
  for (f1, l1), (f2, l2) in zip(first, second):
    np.testing.assert_array_equal(f1['image'], f2['image'])
    np.testing.assert_array_equal(l1['boxes'], l2['boxes'])


def test_seed_at_step_keeps_a_fresh_run_and_reseeds_every_later_start():
  assert input_fn.seed_at_step(None, 500) is None
  assert input_fn.seed_at_step(11, 0) == 11
  assert input_fn.seed_at_step(11, 500) == 11 * 1000003 + 500
  assert input_fn.seed_at_step(5000, 7) == (5000 * 1000003 + 7) % (2 ** 31 - 1)


def test_seeded_input_fn_starts_where_the_model_dir_stopped(tiny_records, tmp_path):
  """Each Estimator.train call (a resumed run, a time-budget part) reads the step it starts from
  in its model_dir: at step 0 the sequence of the seed, at step 40 another, the same each time
  it starts there."""
  config = tiny_config()
  pattern = os.path.join(tiny_records['records'], 'train-*')
  inputs = model_spec.model_inputs(config.model)
  make = input_fn.make_train_input_fn(pattern, config, inputs, seed=11)
  run_config = tf.estimator.RunConfig(model_dir=str(tmp_path))

  def first_images():
    return _run(lambda: make(config=run_config), 1)[0][0]['image']

  def seeded_images(seed):
    dataset = lambda: input_fn.train_dataset(pattern, config, inputs, config.train.batch_size,
                                             seed=seed)
    return _run(dataset, 1)[0][0]['image']

  fresh = first_images()
  np.testing.assert_array_equal(fresh, seeded_images(11))
  with tf.Graph().as_default():
    step = tf1.train.get_or_create_global_step()
    with tf1.Session() as sess:
      sess.run(step.assign(40))
      tf1.train.Saver().save(sess, os.path.join(str(tmp_path), 'model.ckpt'), global_step=40)
  resumed = first_images()
  assert np.abs(resumed - fresh).max() > 1.0
  np.testing.assert_array_equal(resumed, first_images())
  np.testing.assert_array_equal(resumed, seeded_images(11 * 1000003 + 40))


def test_eval_yields_every_image_once_with_original_ground_truth(tiny_records):
  config = tiny_config()
  pattern = os.path.join(tiny_records['records'], 'val-*')
  batches = _run(lambda: input_fn.eval_dataset(
      pattern, config, model_spec.model_inputs(config.model), 3), 3)  # 8 images: 3 + 3 + 2
  filenames = [f for features, _ in batches for f in features['filename']]
  assert sorted(filenames) == [b'%06d.jpg' % i for i in range(25, 33)]
  assert [len(features['filename']) for features, _ in batches] == [3, 3, 2]
  sizes = np.concatenate([features['height'] for features, _ in batches])
  assert ((sizes >= 96) & (sizes <= 160)).all()


def test_empty_pattern_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match=r"No TFRecord files match '.*/nothing-\*': check "
                                       r'--data_dir'):
    input_fn.list_shards(str(tmp_path / 'nothing-*'))


def test_augmentation_configs_follow_the_input_flags():
  reference, geometric_reference = input_fn.augmentation_configs(config_lib.InputConfig())
  assert (reference.prob, reference.hue_max_delta, reference.channel_swap_prob) == (
      0.5, 36.0 / 360.0, 0.0)
  assert (geometric_reference.expand_prob, geometric_reference.max_expand_ratio) == (0.5, 4.0)
  # Caffe's ssd_pascal.py batch samplers.
  assert geometric_reference.crop_min_ious == (0.1, 0.3, 0.5, 0.7, 0.9, 0.0)
  assert geometric_reference.crop_max_ious == (1.0,) * 6
  assert geometric_reference.crop_whole_image
  assert (geometric_reference.crop_max_trials, geometric_reference.crop_min_scale,
          geometric_reference.crop_max_scale, geometric_reference.crop_min_aspect_ratio,
          geometric_reference.crop_max_aspect_ratio) == (50, 0.3, 1.0, 0.5, 2.0)
  custom, geometric_custom = input_fn.augmentation_configs(config_lib.InputConfig(
      photometric_probability=1.0, hue_max_delta_degrees=0.0, channel_swap=True,
      expand_probability=0.25, max_expand_ratio=1.5, crop_min_ious=(0.2,), crop_max_ious=(0.8,),
      crop_whole_image=False, crop_max_trials=7, crop_min_scale=0.5, crop_max_scale=0.9,
      crop_min_aspect_ratio=0.25, crop_max_aspect_ratio=3.0))
  assert (custom.prob, custom.hue_max_delta, custom.channel_swap_prob) == (1.0, 0.0, 0.5)
  assert (geometric_custom.expand_prob, geometric_custom.max_expand_ratio) == (0.25, 1.5)
  assert (geometric_custom.crop_min_ious, geometric_custom.crop_max_ious,
          geometric_custom.crop_whole_image, geometric_custom.crop_max_trials,
          geometric_custom.crop_min_scale, geometric_custom.crop_max_scale,
          geometric_custom.crop_min_aspect_ratio, geometric_custom.crop_max_aspect_ratio) == (
              (0.2,), (0.8,), False, 7, 0.5, 0.9, 0.25, 3.0)
  with pytest.raises(ValueError, match=r'Augmentation flags: crop_min_ious and crop_max_ious '
                                       r'need one value per sampler; got 1 and 6 values'):
    input_fn.augmentation_configs(config_lib.InputConfig(crop_min_ious=(0.2,)))
  # With hue off every draw applies a zero rotation, whatever the coin says.
  with tf.Graph().as_default():
    seed = tf.compat.v1.placeholder(tf.int64, [2])
    params = photometric.sample_photometric_params(custom, seed)
    with tf.compat.v1.Session() as sess:
      draws = [sess.run(params, {seed: [i, 3]}) for i in range(20)]
  assert all(d['apply_hue'] for d in draws)
  assert all(d['hue_delta'] == 0.0 for d in draws)
  with pytest.raises(ValueError, match='hue_max_delta is a fraction of the hue circle'):
    input_fn.augmentation_configs(config_lib.InputConfig(hue_max_delta_degrees=200.0))


def test_every_photometric_and_flip_number_is_a_flag():
  photometric_config, geometric_config = input_fn.augmentation_configs(config_lib.InputConfig(
      brightness_max_delta=10.0, contrast_range=(0.8, 1.2), saturation_range=(0.7, 1.1),
      flip_probability=0.0))
  assert photometric_config.brightness_max_delta == 10.0
  assert photometric_config.contrast_range == (0.8, 1.2)
  assert photometric_config.saturation_range == (0.7, 1.1)
  assert geometric_config.flip_prob == 0.0
  # The defaults are Caffe's ssd_pascal.py distort_param and mirror.
  reference, geometric_reference = input_fn.augmentation_configs(config_lib.InputConfig())
  assert (reference.brightness_max_delta, reference.contrast_range, reference.saturation_range,
          geometric_reference.flip_prob) == (32.0, (0.5, 1.5), (0.5, 1.5), 0.5)
  with pytest.raises(ValueError, match=r'Augmentation flags: PhotometricConfig.contrast_range '
                                       r'must be \(lower, upper\); got \(0.5, 1.0, 1.5\)'):
    input_fn.augmentation_configs(config_lib.InputConfig(contrast_range=(0.5, 1.0, 1.5)))
