"""Which data layout and compute dtype run on this machine, decided once at start-up.

TensorFlow's kernels differ by machine (utility/hardware.py): its default CPU kernels run only
NHWC, oneDNN runs both layouts, bfloat16 is fast only on CPUs with AVX512_BF16/AMX and on GPUs
of compute capability 8.0 or more. A setting that cannot run must fail before training starts,
with one sentence naming the flag, not as a graph error at step 1. So:

- ``probe(data_format, compute_dtype)`` builds the layers the SSD network is made of
  (net/layers.py: convolution + bias, batch norm, both poolings, the dilated convolution, L2
  norm) on a tiny input in a separate graph, runs them and their gradients on this machine's
  default device, and returns the error, if any;
- ``choose_compute_dtype`` turns ``--compute_dtype=auto`` into bfloat16 or float32 from the
  hardware and says why;
- ``choose_conv_algorithm`` turns ``--conv_algorithm=auto`` into winograd (net/winograd.py)
  where it was measured faster than the direct convolutions (CPU, oneDNN on, float32, NHWC),
  in training and inference alike, else direct, and says why;
- ``resolve_model_config`` applies them to a ModelConfig and raises ValueError for an
  explicit choice that cannot run.
"""

import collections
import dataclasses
import functools

import numpy as np
import tensorflow as tf
from absl import logging

from net import layers
from net import winograd
from utility import hardware

tf1 = tf.compat.v1

COMPUTE_DTYPES = ('auto', 'float32', 'bfloat16')
CONV_ALGORITHMS = ('auto',) + layers.CONV_ALGORITHMS

# Facts choose_compute_dtype decides from (utility/hardware.py reads them; tests fake them).
Machine = collections.namedtuple(
    'Machine', ['cpu_model', 'cpu_fast_bfloat16', 'onednn', 'gpu_capabilities'])


def current_machine():
  """The Machine this process runs on."""
  model, cpu_flags = hardware.cpu_model_and_flags()
  return Machine(model, hardware.cpu_has_fast_bfloat16(cpu_flags), hardware.onednn_enabled(),
                 tuple(capability for _, capability in hardware.gpus()))


def _probe_graph(data_format, compute_dtype, with_gradients):
  """The network's layer types on a [2, 6, 7, 3] input; returns what to run."""
  tf1.set_random_seed(0)
  images = tf.constant(np.random.RandomState(0).uniform(-1, 1, [2, 6, 7, 3]).astype(np.float32))
  net = tf.cast(images, compute_dtype)
  net = net if data_format == 'NHWC' else tf.transpose(net, [0, 3, 1, 2])
  net = layers.conv2d(net, 8, 3, 'conv', data_format=data_format)
  net = layers.conv2d(net, 8, 3, 'conv_bn', data_format=data_format, batch_norm=True,
                      is_training=with_gradients)
  net = layers.max_pool(net, 2, 2, 'SAME', data_format)
  net = layers.max_pool(net, 3, 1, 'SAME', data_format)
  net = layers.conv2d(net, 8, 3, 'atrous', dilation=2, data_format=data_format)
  net = layers.conv2d(net, 8, 3, 'strided', stride=2, padding=1, data_format=data_format)
  net = layers.l2_normalization(net, 20.0, data_format)
  # MobileNet / SSDLite: depthwise convolutions, strided and not, with batch norm and ReLU6.
  net = layers.depthwise_conv2d(net, 3, 'depthwise', data_format=data_format,
                                is_training=with_gradients)
  net = layers.depthwise_conv2d(net, 3, 'depthwise_strided', stride=2, data_format=data_format,
                                is_training=with_gradients)
  loss = tf.reduce_sum(tf.cast(net, tf.float32))
  if not with_gradients:
    return loss
  return [loss] + tf.gradients(loss, tf1.trainable_variables())


def _first_line_of(error):
  """The kernel's own complaint in a TF error ('Default MaxPoolingOp only supports NHWC ...')."""
  lines = [line.strip() for line in error.message.splitlines()]
  for index, line in enumerate(lines[:-1]):
    if line.startswith('Node:'):
      return lines[index + 1]
  return next((line for line in lines if line and 'Graph execution error' not in line),
              type(error).__name__)


@functools.lru_cache(maxsize=None)
def probe(data_format, compute_dtype, with_gradients=True):
  """Runs the network's layers (and their gradients) in data_format / compute_dtype here.

  Args:
    data_format: 'NHWC' or 'NCHW'.
    compute_dtype: 'float32' or 'bfloat16'.
    with_gradients: also run the gradients (training) rather than the forward pass only.

  Returns:
    None if everything ran, else one line: the op that failed and TensorFlow's reason.
  """
  with tf.Graph().as_default():
    outputs = _probe_graph(data_format, compute_dtype, with_gradients)
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      try:
        session.run(outputs)
      except (tf.errors.UnimplementedError, tf.errors.InvalidArgumentError,
              tf.errors.NotFoundError, tf.errors.InternalError) as error:
        op_type = error.node_def.op if error.node_def is not None else 'an op'
        return '%s: %s' % (op_type, _first_line_of(error))
  return None


def _where(machine):
  return 'this CPU (%s)' % machine.cpu_model if not machine.gpu_capabilities else 'this GPU'


def choose_compute_dtype(requested, machine, bfloat16_runs):
  """The compute dtype to use and why.

  Args:
    requested: 'auto', 'float32' or 'bfloat16' (--compute_dtype).
    machine: a Machine.
    bfloat16_runs: callable () -> None or an error line: the bfloat16 probe (called only when
      bfloat16 is considered).

  Returns:
    (dtype, reason): dtype 'float32' or 'bfloat16', reason one sentence for the log.

  Raises:
    ValueError: for an unknown value, or an explicit bfloat16 that cannot run here.
  """
  if requested not in COMPUTE_DTYPES:
    raise ValueError('--compute_dtype must be one of %s, got %r.'
                     % (', '.join(COMPUTE_DTYPES), requested))
  if requested == 'float32':
    return 'float32', '--compute_dtype=float32 was asked for.'
  fast, why = _bfloat16_is_fast(machine)
  if requested == 'bfloat16':
    error = bfloat16_runs()
    if error:
      raise ValueError('--compute_dtype=bfloat16 cannot train on %s (%s); use '
                       '--compute_dtype=auto or float32.' % (_where(machine), error))
    if not fast:
      return 'bfloat16', ('--compute_dtype=bfloat16 was asked for, but %s, so expect it to '
                          'be slower than float32.' % why)
    return 'bfloat16', '--compute_dtype=bfloat16 was asked for; %s.' % why
  if not fast:
    return 'float32', '--compute_dtype=auto chose float32: %s.' % why
  error = bfloat16_runs()
  if error:
    return 'float32', ('--compute_dtype=auto chose float32: %s, but its bfloat16 kernels '
                       'failed here (%s).' % (why, error))
  return 'bfloat16', '--compute_dtype=auto chose bfloat16: %s.' % why


def _bfloat16_is_fast(machine):
  """(bool, reason): does the device that trains compute bfloat16 in hardware?"""
  if machine.gpu_capabilities:
    slow = [c for c in machine.gpu_capabilities if not hardware.gpu_has_fast_bfloat16(c)]
    if slow:
      return False, ('a GPU of compute capability %s has no bfloat16 tensor cores (8.0 or '
                     'more needed)' % '.'.join(str(v) for v in slow[0]) if slow[0] else
                     'the GPU reports no compute capability')
    return True, 'the GPUs (compute capability %s) compute bfloat16 natively' % ', '.join(
        '.'.join(str(v) for v in c) for c in machine.gpu_capabilities)
  if not machine.cpu_fast_bfloat16:
    return False, ('this CPU (%s) has no AVX512_BF16 or AMX, so bfloat16 is emulated'
                   % machine.cpu_model)
  if not machine.onednn:
    return False, ('this CPU (%s) has AVX512_BF16/AMX but oneDNN is off '
                   '(TF_ENABLE_ONEDNN_OPTS=0), and only oneDNN uses them' % machine.cpu_model)
  return True, 'this CPU (%s) has AVX512_BF16/AMX and oneDNN is on' % machine.cpu_model


def choose_conv_algorithm(requested, data_format, compute_dtype, machine):
  """The convolution algorithm of training and inference graphs, and why.

  Winograd's F(4x4, 3x3) does 4x fewer multiplies; it wins where the direct convolutions run at
  the CPU's peak and matrix products as fast (oneDNN), and loses with TensorFlow's default CPU
  kernels (SSD300 forward at batch 8 on a 2-core Zen 5: 9.7-10.8 vs 6.8-7.3 images/s with
  oneDNN on, 4.4 vs 5.3 with it off; README, "SSD300-VGG16 against torchvision's ssd300_vgg16").
  GPUs: cuDNN picks Winograd itself.

  Args:
    requested: 'auto', 'direct' or 'winograd' (--conv_algorithm).
    data_format, compute_dtype: the resolved layout and dtype.
    machine: a Machine.

  Returns:
    (algorithm, reason): 'direct' or 'winograd', one sentence for the log.

  Raises:
    ValueError: naming --conv_algorithm for an unknown value, or winograd asked for in a
      layout or dtype it does not compute.
  """
  if requested not in CONV_ALGORITHMS:
    raise ValueError('--conv_algorithm must be one of %s, got %r.'
                     % (', '.join(CONV_ALGORITHMS), requested))
  if requested == 'direct':
    return 'direct', '--conv_algorithm=direct was asked for.'
  unsupported = [why for why, bad in (
      ('--data_format=%s (it computes NHWC only)' % data_format, data_format != 'NHWC'),
      ('--compute_dtype=%s (its transforms need float32)' % compute_dtype,
       compute_dtype != 'float32')) if bad]
  if requested == 'winograd':
    if unsupported:
      raise ValueError('--conv_algorithm=winograd cannot run with %s; use --conv_algorithm=auto '
                       'or direct.' % ' and '.join(unsupported))
    return 'winograd', ('--conv_algorithm=winograd was asked for: the graphs compute '
                        'their 3x3 convolutions of %d+ to %d+ channels by Winograd F(4x4, '
                        '3x3).' % (winograd.MIN_IN_DEPTH, winograd.MIN_OUT_DEPTH))
  if machine.gpu_capabilities:
    return 'direct', '--conv_algorithm=auto chose direct: on a GPU cuDNN picks its own algorithm.'
  if not machine.onednn:
    return 'direct', ('--conv_algorithm=auto chose direct: oneDNN is off on this CPU (%s), and '
                      "with TensorFlow's default kernels Winograd was measured slower."
                      % machine.cpu_model)
  if unsupported:
    return 'direct', '--conv_algorithm=auto chose direct: %s.' % ' and '.join(unsupported)
  return 'winograd', ('--conv_algorithm=auto chose winograd: oneDNN is on on this CPU (%s), '
                      'where Winograd F(4x4, 3x3) was measured faster in float32, forward and '
                      'training.'
                      % machine.cpu_model)


def check_data_format(data_format, machine, layout_runs, flag='--data_format'):
  """Raises ValueError (one sentence naming the flag) if data_format has no kernels here.

  Args:
    data_format: 'NHWC' or 'NCHW'.
    machine: a Machine.
    layout_runs: callable () -> None or an error line: the float32 probe in data_format.
    flag: the flag to name.
  """
  if data_format == 'NHWC':
    return
  error = layout_runs()
  if error is None:
    return
  if not machine.gpu_capabilities and not machine.onednn:
    raise ValueError("%s=%s cannot run here: TensorFlow's default CPU kernels run only NHWC "
                     "(oneDNN is off on this CPU, %s); use %s=NHWC (checkpoints load in either "
                     "layout) or set TF_ENABLE_ONEDNN_OPTS=1." % (flag, data_format,
                                                                  machine.cpu_model, flag))
  raise ValueError('%s=%s cannot run on %s (%s); use %s=NHWC (checkpoints load in either '
                   'layout).' % (flag, data_format, _where(machine), error, flag))


def resolve_model_config(model_config, training=True, machine=None, probe_fn=None,
                         fallback_to_nhwc=False):
  """A copy of model_config with a compute dtype and layout that run on this machine.

  Args:
    model_config: utility.config.ModelConfig; compute_dtype may be 'auto'.
    training: the kernels must have gradients (training) or only run forward (inference).
    machine: a Machine (default: this one).
    probe_fn: probe(data_format, compute_dtype, with_gradients) (default: ``probe``).
    fallback_to_nhwc: if the configured layout cannot run here, use NHWC instead of failing
      (inference of a model trained elsewhere: the layout does not change the weights).

  Returns:
    (ModelConfig with compute_dtype 'float32'/'bfloat16' and a data_format that runs,
     list of log sentences saying what was chosen and why).

  Raises:
    ValueError: one sentence naming --data_format or --compute_dtype.
  """
  machine = machine or current_machine()
  probe_fn = probe_fn or probe
  notes = []
  data_format = model_config.data_format
  try:
    check_data_format(data_format, machine, lambda: probe_fn(data_format, 'float32', training))
  except ValueError as error:
    if not fallback_to_nhwc:
      raise
    notes.append('Running in NHWC: %s' % error)
    data_format = 'NHWC'
  dtype, reason = choose_compute_dtype(model_config.compute_dtype, machine,
                                       lambda: probe_fn(data_format, 'bfloat16', training))
  notes.append(reason)
  algorithm, reason = choose_conv_algorithm(model_config.conv_algorithm, data_format, dtype,
                                            machine)
  notes.append(reason)
  return dataclasses.replace(model_config, compute_dtype=dtype, data_format=data_format,
                             conv_algorithm=algorithm), notes


def resolve_and_log(ssd_config, training=True, fallback_to_nhwc=False):
  """resolve_model_config on an SSDConfig, logging the machine and the choices."""
  model, notes = resolve_model_config(ssd_config.model, training,
                                      fallback_to_nhwc=fallback_to_nhwc)
  logging.info('Machine: %s.', hardware.describe_line())
  for note in notes:
    logging.info('%s', note)
  return dataclasses.replace(ssd_config, model=model)
