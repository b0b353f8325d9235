import numpy as np
import pytest
import tensorflow as tf

from net import train_ops
from utility import config

tf1 = tf.compat.v1


def lr_at(train_config, steps):
  with tf.Graph().as_default():
    step = tf1.placeholder(tf.int64, [])
    lr = train_ops.learning_rate_schedule(step, train_config)
    with tf1.Session() as sess:
      return [float(sess.run(lr, {step: s})) for s in steps]


def test_reference_schedule_warmup_then_piecewise():
  values = lr_at(config.TrainConfig(), [0, 499, 500, 79999, 80000, 99999, 100000, 119999])
  np.testing.assert_allclose(values, [1e-4, 1e-4, 1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5], rtol=1e-6)


def test_schedule_floor_and_no_warmup():
  train = config.TrainConfig(warmup_steps=0, decay_boundaries=(10,), lr_decay_factors=(1.0, 0.01),
                             learning_rate=0.1, end_learning_rate=0.005)
  np.testing.assert_allclose(lr_at(train, [0, 9, 10]), [0.1, 0.1, 0.005], rtol=1e-6)


def _variables():
  with tf1.variable_scope('layer'):
    kernel = tf1.get_variable('weights', initializer=tf.constant([[1.0, 2.0], [3.0, 4.0]]))
    bias = tf1.get_variable('biases', initializer=tf.constant([10.0, -10.0]))
  return kernel, bias


# Kernel sum of squares 30, biases 200, the L2-norm scale 4 + 9 = 13 (Caffe decays it).
@pytest.mark.parametrize('bias_decay, scale_decay, expected', [
    (False, True, 0.5 * 43 * 1e-3), (True, True, 0.5 * 243 * 1e-3),
    (False, False, 0.5 * 30 * 1e-3), (True, False, 0.5 * 230 * 1e-3)])
def test_weight_decay_on_kernels_the_l2_norm_scale_and_optionally_biases(bias_decay, scale_decay,
                                                                        expected):
  with tf.Graph().as_default():
    variables = list(_variables())
    with tf1.variable_scope('conv4_3_norm'):
      variables.append(tf1.get_variable('scale', initializer=tf.constant([2.0, 3.0])))
    with tf1.variable_scope('bn'):
      variables.append(tf1.get_variable('gamma', initializer=tf.constant([100.0])))
    loss = train_ops.weight_decay_loss(
        variables, config.TrainConfig(weight_decay=1e-3, bias_weight_decay=bias_decay,
                                      l2_norm_scale_weight_decay=scale_decay))
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      np.testing.assert_allclose(sess.run(loss), expected, rtol=1e-6)


def test_the_network_names_its_l2_norm_scale_as_weight_decay_expects():
  from net import ssd_net
  with tf.Graph().as_default():
    ssd_net.build_ssd(tf.zeros([1, 192, 192, 3]), 'ssd_quick', 3, [4, 6, 6, 6, 4],
                      width_multiplier=0.125)
    names = [v.op.name for v in tf1.global_variables()
             if v.op.name.endswith('/' + train_ops.L2_NORM_SCALE_NAME)]
  assert names == ['ssd_quick/conv4_3_norm/scale']


def test_bias_learning_rate_multiplier_doubles_bias_step_only():
  # Plain SGD, lr 0.1, loss = sum(kernel) + sum(bias): each gradient is 1, biases step twice as
  # far with the Caffe multiplier 2.
  with tf.Graph().as_default():
    kernel, bias = _variables()
    step = tf1.train.get_or_create_global_step()
    train_op = train_ops.build_train_op(
        tf.reduce_sum(kernel) + tf.reduce_sum(bias), step, tf.constant(0.1),
        config.TrainConfig(optimizer='sgd', bias_lr_multiplier=2.0))
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      sess.run(train_op)
      np.testing.assert_allclose(sess.run(kernel), [[0.9, 1.9], [2.9, 3.9]], rtol=1e-6)
      np.testing.assert_allclose(sess.run(bias), [9.8, -10.2], rtol=1e-6)
      assert sess.run(step) == 1


def test_unknown_optimizer_is_named():
  with pytest.raises(ValueError, match="Unknown --optimizer 'rmsprop'"):
    train_ops.make_optimizer(0.1, config.TrainConfig(optimizer='rmsprop'))
