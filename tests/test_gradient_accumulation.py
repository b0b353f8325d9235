"""--gradient_accumulation_steps: K micro-batches make the optimizer step of the K-times batch.

The equality is exact up to float rounding because the weights do not move between the micro
batches, hard negatives are mined per image, and the multibox sums are divided once by the
positives of all K micro-batches. Batch norm is off here (its statistics are per micro-batch).
"""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from net import model_fn
from net import model_spec
from net import train_ops
from net import validation
from tests.conftest import tiny_config
from utility import config

tf1 = tf.compat.v1
ModeKeys = tf.estimator.ModeKeys

SIZE, ANCHORS_PER_CELL, NUM_CLASSES = 6, 2, 3  # 6 x 6 cells x 2 = 72 anchors, 2 classes + bg
NUM_ANCHORS = SIZE * SIZE * ANCHORS_PER_CELL
POSITIVES_PER_IMAGE = (5, 0, 2, 9)  # micro-batches of 2: 5 and 11 positives


def _train_config(**overrides):
  """Momentum SGD with everything that scales a gradient: warm-up (so the two optimizer steps
  have different rates), weight decay, Caffe's bias multiplier 2, hard negatives with a minimum
  per image (the image without positives adds its hardest negative)."""
  values = dict(optimizer='momentum', momentum=0.9, learning_rate=0.2, warmup_steps=1,
                warmup_learning_rate=0.05, decay_boundaries=(), lr_decay_factors=(1.0,),
                weight_decay=0.01, bias_lr_multiplier=2.0, negative_ratio=3.0,
                min_negatives_per_image=1)
  values.update(overrides)
  return config.TrainConfig(**values)


def _batches(num_batches=2):
  """num_batches batches of 4 images: images, cls_targets (positives as POSITIVES_PER_IMAGE, 6
  ignored anchors per image), loc_targets."""
  rng = np.random.RandomState(3)
  batches = []
  for _ in range(num_batches):
    images = rng.normal(size=[4, SIZE, SIZE, 3]).astype(np.float32)
    cls_targets = np.zeros([4, NUM_ANCHORS], np.int64)
    for i, count in enumerate(POSITIVES_PER_IMAGE):
      anchors = rng.permutation(NUM_ANCHORS)
      cls_targets[i, anchors[:count]] = rng.randint(1, NUM_CLASSES, size=count)
      cls_targets[i, anchors[count:count + 6]] = -1
    loc_targets = rng.normal(size=[4, NUM_ANCHORS, 4]).astype(np.float32)
    batches.append((images, cls_targets, loc_targets))
  return batches


def _tiny_network(images):
  """conv 3x3 (4, ReLU) then a 3x3 head with ANCHORS_PER_CELL x (classes + 4) outputs; kernels
  and biases named as net/layers.py names them (weight decay and the bias multiplier apply)."""
  rng = np.random.RandomState(0)
  net = images
  for name, depth in (('conv1', 4), ('head', ANCHORS_PER_CELL * (NUM_CLASSES + 4))):
    with tf1.variable_scope(name):
      kernel = tf1.get_variable('weights', initializer=tf.constant(
          rng.normal(scale=0.3, size=[3, 3, int(net.shape[-1]), depth]).astype(np.float32)))
      bias = tf1.get_variable('biases', initializer=tf.constant(
          rng.normal(scale=0.1, size=[depth]).astype(np.float32)))
    net = tf.nn.conv2d(net, kernel, 1, 'SAME') + bias
    if name == 'conv1':
      net = tf.nn.relu(net)
  net = tf.reshape(net, [-1, NUM_ANCHORS, NUM_CLASSES + 4])
  return {'class_logits': net[..., :NUM_CLASSES], 'box_offsets': net[..., NUM_CLASSES:]}


def _build_tiny_training(train_config, batch_size):
  """(placeholders, train op, the multibox terms, learning rate) of the tiny model through
  model_fn's loss and train-op helpers."""
  inputs = (tf1.placeholder(tf.float32, [batch_size, SIZE, SIZE, 3]),
            tf1.placeholder(tf.int64, [batch_size, NUM_ANCHORS]),
            tf1.placeholder(tf.float32, [batch_size, NUM_ANCHORS, 4]))
  terms = model_fn._build_losses(  # pylint: disable=protected-access
      _tiny_network(inputs[0]), {'cls_targets': inputs[1], 'loc_targets': inputs[2]},
      config.SSDConfig(train=train_config))
  step = tf1.train.get_or_create_global_step()
  learning_rate = train_ops.learning_rate_schedule(train_ops.optimizer_step(step, train_config),
                                                   train_config)
  train_op = model_fn._build_train_op(  # pylint: disable=protected-access
      terms, step, learning_rate, train_config)
  return inputs, train_op, terms, learning_rate


def _weights_after_each_run(train_config, micro_batches):
  """Trainable variable values (by name) before training, then after each micro-batch run."""
  with tf.Graph().as_default():
    inputs, train_op, _, _ = _build_tiny_training(train_config, len(micro_batches[0][0]))
    variables = tf1.trainable_variables()
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      values = [dict(zip([v.op.name for v in variables], sess.run(variables)))]
      for batch in micro_batches:
        sess.run(train_op, dict(zip(inputs, batch)))
        values.append(dict(zip([v.op.name for v in variables], sess.run(variables))))
  return values


def _halves(batches):
  return [tuple(x[half] for x in batch) for batch in batches
          for half in (slice(0, 2), slice(2, 4))]


@pytest.mark.parametrize('clip_norm', [0.0, 5.0])  # the first gradient's norm is 13.8
def test_two_micro_batches_of_two_step_like_one_batch_of_four(clip_norm, kernel_path):
  batches = _batches()
  whole = _weights_after_each_run(_train_config(gradient_clip_norm=clip_norm), batches)
  micro = _weights_after_each_run(
      _train_config(gradient_clip_norm=clip_norm, gradient_accumulation_steps=2),
      _halves(batches))
  assert sorted(whole[0]) == ['conv1/biases', 'conv1/weights', 'head/biases', 'head/weights']
  for name in whole[0]:
    np.testing.assert_array_equal(micro[0][name], whole[0][name], err_msg=name)  # same start
    # No update after the first micro-batch, then the optimizer steps of the whole batches.
    np.testing.assert_array_equal(micro[1][name], whole[0][name], err_msg=name)
    for step in (1, 2):
      np.testing.assert_allclose(micro[2 * step][name], whole[step][name], rtol=1e-5,
                                 atol=1e-7, err_msg='%s after step %d' % (name, step))
      assert not np.allclose(whole[step][name], whole[step - 1][name]), name


def test_accumulators_hold_one_micro_batch_and_are_zero_after_the_step(kernel_path):
  micro_batches = _halves(_batches(1))
  with tf.Graph().as_default():
    inputs, train_op, terms, _ = _build_tiny_training(
        _train_config(gradient_accumulation_steps=2), 2)
    accumulators = {v.op.name: v for v in train_ops.accumulator_variables()}
    assert sorted(accumulators) == [
        'gradient_accumulation/conv1/biases', 'gradient_accumulation/conv1/weights',
        'gradient_accumulation/head/biases', 'gradient_accumulation/head/weights',
        'gradient_accumulation/micro_step', 'gradient_accumulation/num_positives']
    assert not set(accumulators) & {v.op.name for v in tf1.trainable_variables()}
    gradient = tf.gradients(terms['data_loss_sum'], tf1.trainable_variables())
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      feed = dict(zip(inputs, micro_batches[0]))
      expected = dict(zip([v.op.name for v in tf1.trainable_variables()],
                          sess.run(gradient, feed)))
      sess.run(train_op, feed)
      values = sess.run(accumulators)
      assert values['gradient_accumulation/num_positives'] == 5.0  # 5 + 0 positives
      assert values['gradient_accumulation/micro_step'] == 1
      for name, value in expected.items():  # the un-normalised gradient of the sums
        np.testing.assert_allclose(values['gradient_accumulation/' + name], value, rtol=1e-6)
      sess.run(train_op, dict(zip(inputs, micro_batches[1])))
      for name, value in sess.run(accumulators).items():
        np.testing.assert_array_equal(value, np.zeros_like(value), err_msg=name)
      assert sess.run(tf1.train.get_global_step()) == 2


def test_a_run_resumed_between_micro_batches_completes_the_same_step(tmp_path, kernel_path):
  # The accumulators are global variables: a checkpoint written after the first micro-batch
  # holds its partial sums, and the resumed run applies the step of the whole batch.
  batch = _batches(1)
  micro_batches = _halves(batch)
  whole = _weights_after_each_run(_train_config(), batch)[1]
  train_config = _train_config(gradient_accumulation_steps=2)
  prefix = str(tmp_path / 'model.ckpt')
  for run, micro_batch in enumerate(micro_batches):
    with tf.Graph().as_default():
      inputs, train_op, _, _ = _build_tiny_training(train_config, 2)
      saver = tf1.train.Saver()
      with tf1.Session() as sess:
        if run == 0:
          sess.run(tf1.global_variables_initializer())
        else:
          saver.restore(sess, prefix)
        sess.run(train_op, dict(zip(inputs, micro_batch)))
        saver.save(sess, prefix)
        resumed = {v.op.name: sess.run(v) for v in tf1.trainable_variables()}
  for name, value in whole.items():
    np.testing.assert_allclose(resumed[name], value, rtol=1e-5, atol=1e-7, err_msg=name)


def test_the_learning_rate_follows_optimizer_steps():
  train = config.TrainConfig(gradient_accumulation_steps=3, warmup_steps=1,
                             warmup_learning_rate=0.01, learning_rate=0.1, decay_boundaries=(2,),
                             lr_decay_factors=(1.0, 0.5))
  with tf.Graph().as_default():
    step = tf1.placeholder(tf.int64, [])
    learning_rate = train_ops.learning_rate_schedule(train_ops.optimizer_step(step, train),
                                                     train)
    with tf1.Session() as sess:
      rates = [sess.run(learning_rate, {step: s}) for s in range(9)]
    assert train_ops.optimizer_step(step, config.TrainConfig()) is step  # K = 1: unchanged
  np.testing.assert_allclose(rates, [0.01] * 3 + [0.1] * 3 + [0.05] * 3, rtol=1e-6)


def _random_targets(config_, positives_per_image, seed):
  """Model_fn features and labels of random images with the given positive anchor counts."""
  rng = np.random.RandomState(seed)
  size = config_.model.image_size
  num_anchors = int(model_spec.generate_anchors(config_.model).shape[0])
  num_images = len(positives_per_image)
  cls_targets = np.zeros([num_images, num_anchors], np.int64)
  for i, count in enumerate(positives_per_image):
    cls_targets[i, rng.choice(num_anchors, count, replace=False)] = rng.randint(1, 6, size=count)
  features = {'image': rng.uniform(-100, 100, [num_images, size, size, 3]).astype(np.float32)}
  labels = {'cls_targets': cls_targets,
            'loc_targets': rng.normal(size=[num_images, num_anchors, 4]).astype(np.float32),
            'boxes': np.tile(np.float32([[0.1, 0.1, 0.6, 0.7]]), [num_images, 2, 1]),
            'labels': np.ones([num_images, 2], np.int64),
            'difficult': np.zeros([num_images, 2], np.int64),
            'num_boxes': np.full([num_images], 2, np.int32)}
  return features, labels


def _model_fn_training(config_, micro_batches, initial=None):
  """Runs ssd_model_fn's TRAIN op once per micro-batch (fed), from `initial` weights if given;
  returns (weights before, weights after by name, accumulator names, global step)."""
  with tf.Graph().as_default():
    features = {k: tf1.placeholder(v.dtype, v.shape) for k, v in micro_batches[0][0].items()}
    labels = {k: tf1.placeholder(v.dtype, v.shape) for k, v in micro_batches[0][1].items()}
    spec = model_fn.ssd_model_fn(features, labels, ModeKeys.TRAIN, tf.estimator.RunConfig(),
                                 config_)
    variables = tf1.trainable_variables()
    accumulators = [v.op.name for v in train_ops.accumulator_variables()]
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      for v in variables if initial else ():
        v.load(initial[v.op.name], sess)
      before = dict(zip([v.op.name for v in variables], sess.run(variables)))
      for batch_features, batch_labels in micro_batches:
        feed = {features[k]: v for k, v in batch_features.items()}
        feed.update({labels[k]: v for k, v in batch_labels.items()})
        sess.run(spec.train_op, feed)
      after = dict(zip([v.op.name for v in variables], sess.run(variables)))
      return before, after, accumulators, sess.run(tf1.train.get_global_step())


def test_ssd_model_fn_accumulates_like_the_double_batch(kernel_path):
  whole_config = tiny_config(optimizer='momentum', learning_rate=0.05)
  micro_config = dataclasses.replace(whole_config, train=dataclasses.replace(
      whole_config.train, gradient_accumulation_steps=2))
  # 5 and 8 positives in the two micro-batches: averaging per-micro-batch normalised gradients
  # (Caffe's iter_size) would give another update.
  features, labels = _random_targets(whole_config, (1, 4, 0, 8), seed=1)
  halves = [({k: v[s] for k, v in features.items()}, {k: v[s] for k, v in labels.items()})
            for s in (slice(0, 2), slice(2, 4))]
  initial, whole, no_accumulators, whole_step = _model_fn_training(whole_config,
                                                                   [(features, labels)])
  _, micro, accumulators, micro_step = _model_fn_training(micro_config, halves, initial)
  assert no_accumulators == [] and whole_step == 1  # K = 1 builds today's graph
  assert len(accumulators) == len(whole) + 2 and micro_step == 2
  moved = 0
  for name, value in whole.items():
    # To 1e-5 of the step: float32 sums over 4 images or 2 + 2 round differently (about 1e-6).
    step = np.abs(value - initial[name]).max()
    np.testing.assert_allclose(micro[name], value, rtol=1e-5, atol=1e-5 * step, err_msg=name)
    moved += step > 0
  assert moved > len(whole) // 2


def _validate_train(**train_overrides):
  validation.validate(dataclasses.replace(config.SSDConfig(), train=dataclasses.replace(
      config.TrainConfig(), **train_overrides)))


@pytest.mark.parametrize('overrides, message', [
    (dict(gradient_accumulation_steps=0),
     r'--gradient_accumulation_steps must be >= 1 \(1 = no accumulation\), got 0\.'),
    (dict(gradient_accumulation_steps=2, cpu_replicas=2),
     r'--gradient_accumulation_steps=2 works on one replica only: drop --cpu_replicas'),
    (dict(gradient_accumulation_steps=2, num_gpus=4),
     r'--gradient_accumulation_steps=2 works on one replica only'),
    (dict(gradient_accumulation_steps=7),
     r'--max_number_of_steps counts micro-batches: make it a multiple of '
     r'--gradient_accumulation_steps=7 \(got 120000\)\.'),
])
def test_validation_refuses_bad_accumulation_settings(overrides, message):
  with pytest.raises(ValueError, match=message):
    _validate_train(**overrides)


def test_validation_accepts_accumulation_on_one_device():
  assert _validate_train(gradient_accumulation_steps=4, num_gpus=1) is None
  assert _validate_train(gradient_accumulation_steps=1, cpu_replicas=2) is None
