import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from dataset import input_fn
from net import model_fn
from net import model_spec
from tests.conftest import tiny_config

tf1 = tf.compat.v1
ModeKeys = tf.estimator.ModeKeys


def _fixed_batch(tiny_records, config, batch_size=4):
  pattern = os.path.join(tiny_records['records'], 'train-*')
  with tf.Graph().as_default():
    element = tf1.data.make_one_shot_iterator(
        input_fn.train_dataset(pattern, config, model_spec.model_inputs(config.model),
                               batch_size, seed=1)).get_next()
    with tf1.Session() as sess:
      return sess.run(element)


def _train_spec(features, labels, config, model_dir):
  tensors = ({k: tf.constant(v) for k, v in features.items()},
             {k: tf.constant(v) for k, v in labels.items()})
  return model_fn.ssd_model_fn(tensors[0], tensors[1], ModeKeys.TRAIN,
                               tf.estimator.RunConfig(model_dir=model_dir), config)


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(tiny_records, tmp_path, kernel_path):
  config = tiny_config(learning_rate=3e-3)
  features, labels = _fixed_batch(tiny_records, config)
  with tf.Graph().as_default():
    spec = _train_spec(features, labels, config, str(tmp_path))
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      losses = [sess.run([spec.train_op, spec.loss])[1] for _ in range(8)]
  assert np.isfinite(losses).all()
  assert losses[-1] < 0.7 * losses[0], losses


def test_nan_guard_stops_before_any_weight_changes(tiny_records, tmp_path, kernel_path):
  config = tiny_config()
  features, labels = _fixed_batch(tiny_records, config)
  labels['loc_targets'][0] = np.nan  # e.g. a corrupt box
  with tf.Graph().as_default():
    spec = _train_spec(features, labels, config, str(tmp_path))
    variables = tf1.trainable_variables()
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      before = sess.run(variables)
      with pytest.raises(tf.errors.InvalidArgumentError,
                         match=r'SSD loss is NaN or Inf.*at step.*\[1\]'):
        sess.run(spec.train_op)
      after = sess.run(variables)
      assert sess.run(tf1.train.get_global_step()) == 0
  for b, a in zip(before, after):
    np.testing.assert_array_equal(a, b)


def test_predict_mode_returns_padded_detections(tiny_records):
  config = tiny_config()
  with tf.Graph().as_default():
    images = tf.zeros([2, 160, 160, 3])
    spec = model_fn.ssd_model_fn({'image': images}, None, ModeKeys.PREDICT,
                                 tf.estimator.RunConfig(), config)
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      out = sess.run(spec.predictions)
  assert out['detection_boxes'].shape == (2, 200, 4)
  assert out['detection_classes'].shape == (2, 200)
  n = out['num_detections']
  assert (out['detection_scores'][0, n[0]:] == 0).all()
  assert ((out['detection_classes'][0, :n[0]] >= 1) &
          (out['detection_classes'][0, :n[0]] <= 5)).all()


def _constant_input_fn(features, labels, per_replica_batch):
  def fn(input_context=None):
    del input_context
    dataset = tf.data.Dataset.from_tensor_slices((features, labels))
    return dataset.batch(per_replica_batch).repeat()
  return fn


def _train_one_step(config, model_dir, features, labels, per_replica_batch, caplog):
  from net import run_config
  strategy, _ = run_config.make_strategy(config.train)
  estimator = tf.estimator.Estimator(
      model_fn=model_fn.make_model_fn(config),
      config=run_config.make_run_config(model_dir, config.train, strategy))
  caplog.clear()
  estimator.train(_constant_input_fn(features, labels, per_replica_batch), max_steps=1)
  first_loss = [r.getMessage() for r in caplog.records if r.getMessage().startswith('loss = ')]
  return estimator, float(first_loss[0].split(',')[0].split('=')[1])


def test_two_cpu_replicas_match_one_device(tiny_records, tmp_path, caplog, kernel_path):
  import logging
  caplog.set_level(logging.INFO, logger='tensorflow')
  # Momentum SGD with Caffe's bias multiplier 2 and weight decay: every scaling must agree.
  config = tiny_config(optimizer='momentum', learning_rate=0.05, max_number_of_steps=1)
  features, labels = _fixed_batch(tiny_records, config)
  single_dir, multi_dir = str(tmp_path / 'single'), str(tmp_path / 'multi')
  single, single_loss = _train_one_step(config, single_dir, features, labels, 4, caplog)
  # Start the two-replica run from the single run's initial checkpoint (step 0).
  os.makedirs(multi_dir)
  for name in os.listdir(single_dir):
    if name.startswith('model.ckpt-0.'):
      shutil.copy(os.path.join(single_dir, name), multi_dir)
  with open(os.path.join(multi_dir, 'checkpoint'), 'w') as f:
    f.write('model_checkpoint_path: "model.ckpt-0"\n')
  import dataclasses
  multi_config = dataclasses.replace(config, train=dataclasses.replace(config.train,
                                                                       cpu_replicas=2))
  multi, multi_loss = _train_one_step(multi_config, multi_dir, features, labels, 2, caplog)
  np.testing.assert_allclose(multi_loss, single_loss, rtol=1e-4)
  names = [n for n in single.get_variable_names() if n.startswith('ssd_quick/')
           and 'Momentum' not in n]
  assert len(names) > 20
  for name in names:
    np.testing.assert_allclose(multi.get_variable_value(name), single.get_variable_value(name),
                               rtol=1e-4, atol=1e-6, err_msg=name)
  # And the step really moved the weights.
  initial = tf.train.load_checkpoint(os.path.join(multi_dir, 'model.ckpt-0'))
  moved = [n for n in names if not np.allclose(initial.get_tensor(n),
                                               single.get_variable_value(n))]
  assert len(moved) > len(names) // 2
