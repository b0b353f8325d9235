"""Helpers for running TF1-style graph code from tests."""

import tensorflow as tf

tf1 = tf.compat.v1


def execute(fn, *numpy_inputs):
  """Builds fn(*tensors) in a fresh graph and returns its evaluated outputs as numpy.

  The inputs are fed as constants; fn may return a tensor or any nest of tensors.
  """
  with tf.Graph().as_default():
    tensors = [tf.constant(x) for x in numpy_inputs]
    outputs = fn(*tensors)
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      return sess.run(outputs)
