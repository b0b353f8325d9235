"""Learning-rate schedule, optimizer, weight decay and the train op (docs/RECIPE.md, "Loss",
"Schedule").

Kept apart from the model_fn so each piece is small and testable on its own.
"""

import re

import tensorflow as tf

tf1 = tf.compat.v1

KERNEL_NAME = 'weights'  # net/layers.py names every convolution kernel this
BIAS_NAME = 'biases'
L2_NORM_SCALE_NAME = 'scale'  # net/layers.l2_normalization's per-channel scale


def learning_rate_schedule(global_step, train_config):
  """Warm-up, then piecewise-constant decay, floored at end_learning_rate.

  lr = warmup_learning_rate for step < warmup_steps, then learning_rate * lr_decay_factors[i]
  where i counts the decay_boundaries already passed. Reference: 1e-4 for 500 steps, then
  1e-3, x0.1 at 80k and 100k.

  Args:
    global_step: int64 scalar tensor.
    train_config: utility.config.TrainConfig.

  Returns:
    float32 scalar tensor.
  """
  step = tf.cast(global_step, tf.int64)
  boundaries = tf.constant([int(b) for b in train_config.decay_boundaries], tf.int64)
  values = tf.constant([train_config.learning_rate * f for f in train_config.lr_decay_factors],
                       tf.float32)
  # Caffe "multistep": the rate changes when step >= boundary (tf's piecewise_constant waits
  # for step > boundary).
  num_passed = tf.reduce_sum(tf.cast(step >= boundaries, tf.int32))
  lr = tf.gather(values, num_passed)
  if train_config.warmup_steps > 0:
    lr = tf.where(step < train_config.warmup_steps,
                  tf.constant(train_config.warmup_learning_rate, tf.float32), lr)
  return tf.maximum(lr, train_config.end_learning_rate)


def make_optimizer(learning_rate, train_config):
  """The tf.compat.v1 optimizer named by train_config.optimizer."""
  name = train_config.optimizer
  if name == 'momentum':
    return tf1.train.MomentumOptimizer(learning_rate, train_config.momentum)
  if name == 'adam':
    return tf1.train.AdamOptimizer(learning_rate, train_config.adam_beta1,
                                   train_config.adam_beta2)
  if name == 'sgd':
    return tf1.train.GradientDescentOptimizer(learning_rate)
  raise ValueError('Unknown --optimizer %r: use momentum, adam or sgd.' % name)


def _leaf_name(variable):
  """'scope/layer/biases' -> 'biases'; MirroredStrategy's per-replica copies are named
  'scope/layer/biases/replica_1', so that suffix is skipped."""
  parts = variable.op.name.split('/')
  while len(parts) > 1 and re.fullmatch(r'replica_\d+', parts[-1]):
    parts.pop()
  return parts[-1]


def weight_decay_loss(variables, train_config):
  """weight_decay * sum(||w||^2) / 2 over kernels, the L2-norm scale (Caffe decays it; off
  with l2_norm_scale_weight_decay=False) and biases if bias_weight_decay.

  The 1/2 (tf.nn.l2_loss) makes the gradient weight_decay * w, Caffe's weight_decay.
  Returns a float32 scalar (0 when weight_decay is 0 or nothing qualifies).
  """
  names = {KERNEL_NAME}
  if train_config.bias_weight_decay:
    names.add(BIAS_NAME)
  if train_config.l2_norm_scale_weight_decay:
    names.add(L2_NORM_SCALE_NAME)
  decayed = [v for v in variables if _leaf_name(v) in names]
  if train_config.weight_decay <= 0 or not decayed:
    return tf.constant(0.0)
  return train_config.weight_decay * tf.add_n([tf.nn.l2_loss(v) for v in decayed])


def scale_bias_gradients(grads_and_vars, multiplier):
  """Multiplies the gradients of biases (Caffe's lr_mult 2 for biases, with plain/momentum
  SGD this equals a doubled learning rate)."""
  if multiplier == 1.0:
    return grads_and_vars
  return [(g * multiplier if g is not None and _leaf_name(v) == BIAS_NAME else g, v)
          for g, v in grads_and_vars]


def build_train_op(loss, global_step, learning_rate, train_config):
  """Minimizes loss: gradients, bias multiplier, optional clipping, batch-norm updates.

  Args:
    loss: float32 scalar to minimize (already checked for NaN/Inf by the caller).
    global_step: the global step variable, incremented once per step.
    learning_rate: float32 scalar tensor.
    train_config: utility.config.TrainConfig.

  Returns:
    The train op.
  """
  optimizer = make_optimizer(learning_rate, train_config)
  grads_and_vars = optimizer.compute_gradients(loss)
  grads_and_vars = [(g, v) for g, v in grads_and_vars if g is not None]
  grads_and_vars = scale_bias_gradients(grads_and_vars, train_config.bias_lr_multiplier)
  if train_config.gradient_clip_norm > 0:
    grads, variables = zip(*grads_and_vars)
    grads, _ = tf.clip_by_global_norm(grads, train_config.gradient_clip_norm)
    grads_and_vars = list(zip(grads, variables))
  update_ops = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
  with tf.control_dependencies(update_ops):
    return optimizer.apply_gradients(grads_and_vars, global_step=global_step)
