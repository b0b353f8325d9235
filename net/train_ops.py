"""Learning-rate schedule, optimizer, weight decay and the train op (docs/RECIPE.md, "Loss",
"Schedule").

Kept apart from the model_fn so each piece is small and testable on its own.

Gradient accumulation (--gradient_accumulation_steps K > 1): the global step still counts
session runs, one micro-batch each, and the optimizer steps on every K-th run with the
gradient of the K micro-batches as one batch (build_accumulating_train_op); the learning-rate
schedule counts optimizer steps (optimizer_step).
"""

import re

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1

ACCUMULATOR_SCOPE = 'gradient_accumulation'  # the accumulators of build_accumulating_train_op
KERNEL_NAME = 'weights'  # net/layers.py names every convolution kernel this
BIAS_NAME = 'biases'
L2_NORM_SCALE_NAME = 'scale'  # net/layers.l2_normalization's per-channel scale


def optimizer_step(global_step, train_config):
  """The step the learning-rate schedule counts: optimizer steps.

  The global step counts micro-batches, so with K = gradient_accumulation_steps > 1 this is
  global_step // K (the micro-batches of optimizer step n all see the rate of step n); with
  K = 1 it is global_step itself (the graph is unchanged).

  Args:
    global_step: int64 scalar tensor.
    train_config: utility.config.TrainConfig.

  Returns:
    int64 scalar tensor (global_step itself when K = 1).
  """
  steps = train_config.gradient_accumulation_steps
  if steps == 1:
    return global_step
  return tf.math.floordiv(tf.cast(global_step, tf.int64), steps)


LEARNING_RATE_DECAYS = ('piecewise', 'cosine')


def learning_rate_schedule(global_step, train_config):
  """Warm-up, then the decay of train_config.learning_rate_decay, floored at end_learning_rate.

  lr = warmup_learning_rate for step < warmup_steps, then
  - piecewise (Caffe "multistep", the reference): learning_rate * lr_decay_factors[i] where i
    counts the decay_boundaries already passed. Reference: 1e-4 for 500 steps, then 1e-3, x0.1
    at 80k and 100k.
  - cosine (Loshchilov & Hutter 2017, SGDR without restarts; not in the reference):
    end + (learning_rate - end) * (1 + cos(pi * t)) / 2, t going from 0 at warmup_steps to 1 at
    the last optimizer step (max_number_of_steps // gradient_accumulation_steps).

  Args:
    global_step: int64 scalar tensor (optimizer steps: train_ops.optimizer_step).
    train_config: utility.config.TrainConfig.

  Returns:
    float32 scalar tensor.
  """
  step = tf.cast(global_step, tf.int64)
  decay = train_config.learning_rate_decay
  if decay == 'piecewise':
    boundaries = tf.constant([int(b) for b in train_config.decay_boundaries], tf.int64)
    values = tf.constant([train_config.learning_rate * f for f in train_config.lr_decay_factors],
                         tf.float32)
    # Caffe "multistep": the rate changes when step >= boundary (tf's piecewise_constant waits
    # for step > boundary).
    num_passed = tf.reduce_sum(tf.cast(step >= boundaries, tf.int32))
    lr = tf.gather(values, num_passed)
  elif decay == 'cosine':
    last = train_config.max_number_of_steps // train_config.gradient_accumulation_steps
    span = max(last - train_config.warmup_steps, 1)
    t = tf.clip_by_value(tf.cast(step - train_config.warmup_steps, tf.float32) / span, 0.0, 1.0)
    end = train_config.end_learning_rate
    lr = end + (train_config.learning_rate - end) * 0.5 * (1.0 + tf.cos(np.pi * t))
  else:
    raise ValueError('Unknown --learning_rate_decay %r: use %s.'
                     % (decay, ' or '.join(LEARNING_RATE_DECAYS)))
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
  decayed = [v for v in variables if _is_decayed(v, train_config)]
  if train_config.weight_decay <= 0 or not decayed:
    return tf.constant(0.0)
  return train_config.weight_decay * tf.add_n([tf.nn.l2_loss(v) for v in decayed])


def _is_decayed(variable, train_config):
  """Whether weight_decay_loss counts the variable (whatever the weight_decay value)."""
  names = {KERNEL_NAME}
  if train_config.bias_weight_decay:
    names.add(BIAS_NAME)
  if train_config.l2_norm_scale_weight_decay:
    names.add(L2_NORM_SCALE_NAME)
  return _leaf_name(variable) in names


def scale_bias_gradients(grads_and_vars, multiplier):
  """Multiplies the gradients of biases (Caffe's lr_mult 2 for biases, with plain/momentum
  SGD this equals a doubled learning rate)."""
  if multiplier == 1.0:
    return grads_and_vars
  return [(g * multiplier if g is not None and _leaf_name(v) == BIAS_NAME else g, v)
          for g, v in grads_and_vars]


def _finish_gradients(grads_and_vars, train_config):
  """Bias multiplier, then optional clipping to the global norm: what every update gets."""
  grads_and_vars = scale_bias_gradients(grads_and_vars, train_config.bias_lr_multiplier)
  if train_config.gradient_clip_norm > 0:
    grads, variables = zip(*grads_and_vars)
    grads, _ = tf.clip_by_global_norm(grads, train_config.gradient_clip_norm)
    grads_and_vars = list(zip(grads, variables))
  return grads_and_vars


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
  grads_and_vars = _finish_gradients(grads_and_vars, train_config)
  update_ops = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
  with tf.control_dependencies(update_ops):
    return optimizer.apply_gradients(grads_and_vars, global_step=global_step)


def _zeros_variable(name, shape, dtype):
  """A non-trainable variable starting at zero, in GLOBAL_VARIABLES so checkpoints hold it
  (a run killed between two optimizer steps resumes with its partial sums)."""
  return tf1.get_variable(name, shape=shape, dtype=dtype, initializer=tf1.zeros_initializer(),
                          trainable=False, collections=[tf1.GraphKeys.GLOBAL_VARIABLES])


def accumulator_variables():
  """The accumulators of build_accumulating_train_op in the default graph (none when K = 1)."""
  return [v for v in tf1.global_variables() if v.op.name.startswith(ACCUMULATOR_SCOPE + '/')]


def build_accumulating_train_op(data_loss_sum, num_positives, global_step, learning_rate,
                                train_config):
  """One micro-batch per run; every K-th run one optimizer step on the K micro-batches.

  Each run adds the gradient of this micro-batch's un-normalised multibox loss sum and its
  positive count to accumulators. On the K-th run the update is
  sum of gradients / max(sum of positives, 1) + the gradient of weight_decay_loss (once, as on
  one batch: weight_decay * w), with the bias multiplier and clipping of build_train_op, and the
  accumulators go back to zero. The weights do not change between the K runs and hard negatives
  are mined per image, so this is exactly the gradient of the K-times batch (with batch norm
  the statistics are still per micro-batch's). Batch-norm moving averages update on every run.

  Variables under ACCUMULATOR_SCOPE: one accumulator per trainable variable with a data
  gradient (named like it below the scope), 'num_positives' (float32) and 'micro_step' (int64,
  runs since the last optimizer step). All are global variables, so checkpoints hold them.

  Args:
    data_loss_sum: float32 scalar, confidence sum + loc_weight * localization sum of this
      micro-batch (not divided by its positives).
    num_positives: float32 scalar, positive anchors of this micro-batch.
    global_step: the global step variable, incremented on every run (it counts micro-batches).
    learning_rate: float32 scalar tensor (of optimizer_step(global_step)).
    train_config: utility.config.TrainConfig with gradient_accumulation_steps >= 2.

  Returns:
    The train op.
  """
  steps = train_config.gradient_accumulation_steps
  optimizer = make_optimizer(learning_rate, train_config)
  decays = train_config.weight_decay > 0
  # (data gradient or None, decayed, variable), in the order of the trainable variables.
  terms = [(g, decays and _is_decayed(v, train_config), v)
           for g, v in optimizer.compute_gradients(data_loss_sum)]
  terms = [term for term in terms if term[0] is not None or term[1]]
  with tf1.variable_scope(ACCUMULATOR_SCOPE, reuse=False):
    sums = [_zeros_variable(v.op.name, v.shape, v.dtype.base_dtype) if g is not None else None
            for g, _, v in terms]
    positives = _zeros_variable('num_positives', [], tf.float32)
    micro_step = _zeros_variable('micro_step', [], tf.int64)
  added = [total.assign_add(tf.convert_to_tensor(g))
           for total, (g, _, _) in zip(sums, terms) if total is not None]
  added.append(positives.assign_add(num_positives))
  with tf.control_dependencies(added + tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)):
    is_last = tf.greater_equal(micro_step.assign_add(1), steps)

  def apply_and_reset():
    # Built in the branch, so the weight-decay gradients are only computed on the K-th run.
    normalizer = tf.maximum(positives.read_value(), 1.0)
    grads_and_vars = []
    for total, (_, decayed, variable) in zip(sums, terms):
      parts = ([total.read_value() / normalizer] if total is not None else []) + (
          [train_config.weight_decay * variable.read_value()] if decayed else [])
      grads_and_vars.append((tf.add_n(parts), variable))
    update = optimizer.apply_gradients(_finish_gradients(grads_and_vars, train_config))
    with tf.control_dependencies([update]):
      resets = [total.assign(tf.zeros_like(total)) for total in sums if total is not None]
      resets += [positives.assign(0.0), micro_step.assign(0)]
    with tf.control_dependencies(resets):
      return tf.constant(True)

  with tf.control_dependencies([is_last]):
    applied = tf.cond(is_last, apply_and_reset, lambda: tf.constant(False))
  with tf.control_dependencies([applied]):
    return tf1.assign_add(global_step, 1, name='train_op').op
