"""Small graph-mode layer helpers shared by the backbone, the extra layers and the heads.

Every layer creates its variables explicitly with ``tf.compat.v1.get_variable`` inside its own
variable scope, using TF-slim's leaf names so slim checkpoints map by prefix:

- ``weights``: convolution kernel, always ``[kernel_h, kernel_w, in_depth, out_depth]`` (HWIO) in
  both data formats, so a checkpoint written by an NHWC graph loads into an NCHW graph.
- ``biases``: ``[out_depth]``.
- ``BatchNorm/{beta,gamma,moving_mean,moving_variance}``: optional batch norm (not in the
  reference SSD; for small/quick models only).
- ``scale``: the learnable per-channel factor of ``l2_normalization``.

Only kernels are named ``weights``, so the model_fn can select them for L2 weight decay by name
(the Caffe reference decays kernels only). Weight decay is not added here.

Every variable is also put into ``GraphKeys.MODEL_VARIABLES`` (as slim does), which separates the
model's variables from optimizer slots and the global step when restoring a backbone.

``data_format`` is ``'NHWC'`` or ``'NCHW'`` for every op; the channel axis follows it.

How ``conv2d`` computes a convolution is set for a whole network by the
``convolution_algorithm(name, cache_kernels)`` context (model_spec.build_network opens it):
'direct' (``tf.nn.conv2d``, the default) or 'winograd' (net/winograd.py for the 3x3 stride-1
layers where it is faster, direct for the others). Inference graphs cache each kernel's
Winograd transform in a local variable; training graphs (cache_kernels=False) transform the
kernel in every step, so that the gradient reaches it. The variables are the same either way.
"""

import contextlib
import threading

import tensorflow as tf

from net import winograd

tf1 = tf.compat.v1

DATA_FORMATS = ('NHWC', 'NCHW')

# Batch norm hyper-parameters (Keras defaults, as in google/automl efficientdet).
BATCH_NORM_MOMENTUM = 0.99
BATCH_NORM_EPSILON = 1e-3

# Guards the L2 norm against an all-zero pixel (ReLU output): Caffe's Normalize layer uses 1e-10.
L2_NORM_EPSILON = 1e-10

_VARIABLE_COLLECTIONS = (tf1.GraphKeys.GLOBAL_VARIABLES, tf1.GraphKeys.MODEL_VARIABLES)

CONV_ALGORITHMS = ('direct', 'winograd')
# Per thread: MirroredStrategy builds each replica's model_fn in a thread of its own.
_algorithm = threading.local()
_DEFAULT_SETTING = ('direct', True)  # (algorithm, cache_kernels) outside any block


@contextlib.contextmanager
def convolution_algorithm(name, cache_kernels=True):
  """Within the block, conv2d computes with `name` ('direct' or 'winograd').

  Args:
    name: 'direct' or 'winograd'.
    cache_kernels: Winograd only: keep each kernel's transform in a local variable computed
      once per session (inference graphs: the kernels do not change), or transform the kernel
      in every run (training graphs: the gradient flows through the transform to the kernel).
  """
  if name not in CONV_ALGORITHMS:
    raise ValueError('convolution algorithm must be one of %s, got %r.'
                     % (', '.join(CONV_ALGORITHMS), name))
  previous = getattr(_algorithm, 'setting', _DEFAULT_SETTING)
  _algorithm.setting = (name, cache_kernels)
  try:
    yield
  finally:
    _algorithm.setting = previous


def current_convolution_algorithm():
  """The algorithm of the innermost convolution_algorithm block ('direct' outside any)."""
  return getattr(_algorithm, 'setting', _DEFAULT_SETTING)[0]


def _winograd_kernel(kernel):
  """The Winograd transform of kernel for this block: cached (inference) or per run."""
  if getattr(_algorithm, 'setting', _DEFAULT_SETTING)[1]:
    return winograd.cached_transformed_kernel(kernel)
  return winograd.transform_kernel(kernel)


def check_data_format(data_format):
  """Raises ValueError unless data_format is 'NHWC' or 'NCHW'."""
  if data_format not in DATA_FORMATS:
    raise ValueError("data_format must be 'NHWC' or 'NCHW', got %r." % (data_format,))


def channel_axis(data_format):
  """Index of the channel dimension of a 4-D tensor in data_format."""
  check_data_format(data_format)
  return 3 if data_format == 'NHWC' else 1


# Kernel initializers by TrainConfig.weight_init. Caffe's "xavier" filler (filler.hpp,
# variance_norm FAN_IN by default): U(-sqrt(3 / fan_in), +sqrt(3 / fan_in)), fan_in =
# kernel height x width x input channels; 'glorot' averages fan_in and fan_out instead.
KERNEL_INITIALIZERS = {
    'xavier': lambda: tf1.variance_scaling_initializer(1.0, 'fan_in', 'uniform'),
    'glorot': tf1.glorot_uniform_initializer,
}


def kernel_initializer(name):
  """The initializer of TrainConfig.weight_init ``name``; ValueError naming the flag."""
  if name not in KERNEL_INITIALIZERS:
    raise ValueError('--weight_init must be one of %s, got %r.'
                     % (', '.join(KERNEL_INITIALIZERS), name))
  return KERNEL_INITIALIZERS[name]()


def _model_variable(name, shape, initializer, trainable=True, **kwargs):
  return tf1.get_variable(name, shape=shape, dtype=tf.float32, initializer=initializer,
                          trainable=trainable, collections=list(_VARIABLE_COLLECTIONS), **kwargs)


def _explicit_padding(inputs, padding, data_format):
  """(inputs, padding for tf.nn.conv2d): an int p zero-pads p pixels on every spatial side.

  Caffe's ``pad: p``. Padded with tf.pad before a 'VALID' convolution rather than through
  conv2d's explicit-padding attribute: oneDNN does not take that attribute, and TensorFlow's
  fallback kernel for its gradient runs only NHWC, so NCHW training would fail on a CPU.
  """
  if isinstance(padding, str):
    if padding.upper() not in ('SAME', 'VALID'):
      raise ValueError("padding must be 'SAME', 'VALID' or an int, got %r." % (padding,))
    return inputs, padding.upper()
  pixels = [int(padding), int(padding)]
  if not any(pixels):
    return inputs, 'VALID'
  if data_format == 'NHWC':
    return tf.pad(inputs, [[0, 0], pixels, pixels, [0, 0]]), 'VALID'
  return tf.pad(inputs, [[0, 0], [0, 0], pixels, pixels]), 'VALID'


def conv2d(inputs, depth, kernel_size, scope, stride=1, padding='SAME', dilation=1,
           data_format='NHWC', activation=tf.nn.relu, batch_norm=False, is_training=False):
  """Convolution + bias (or batch norm) + activation, with slim variable names.

  Args:
    inputs: float32 [batch, height, width, in_depth] (NHWC) or [batch, in_depth, height, width]
      (NCHW); in_depth must be static.
    depth: int, number of output channels.
    kernel_size: int, square kernel side.
    scope: variable scope name of this layer, e.g. 'conv1_1'.
    stride: int, spatial stride.
    padding: 'SAME', 'VALID', or an int number of zero pixels added on every spatial side.
    dilation: int, atrous rate (fc6 uses 6), computed by atrous_conv2d; cannot be combined
      with stride > 1.
    data_format: 'NHWC' or 'NCHW'.
    activation: function applied last, or None for a linear layer (the heads).
    batch_norm: if True, batch norm replaces the bias (beta plays its role).
    is_training: Python bool, batch norm mode (batch statistics and moving average updates).

  Returns:
    float32 output tensor in data_format with `depth` channels.
  """
  check_data_format(data_format)
  if stride > 1 and dilation > 1:
    raise ValueError('conv2d %s: stride %d and dilation %d cannot be combined.'
                     % (scope, stride, dilation))
  in_depth = inputs.shape[channel_axis(data_format)]
  if in_depth is None:
    raise ValueError('conv2d %s needs a static input depth, got shape %s.' % (scope, inputs.shape))
  with tf1.variable_scope(scope):
    # No initializer here: the enclosing variable scope's (kernel_initializers), so that the
    # training recipe chooses it for every layer at once.
    kernel = _model_variable('weights', [kernel_size, kernel_size, int(in_depth), depth], None)
    strides = [1, stride, stride, 1] if data_format == 'NHWC' else [1, 1, stride, stride]
    # Mixed precision: float32 variables, the convolution in the inputs' dtype (bfloat16).
    kernel = tf.cast(kernel, inputs.dtype)
    winograd_padding = _winograd_padding(inputs, padding, kernel, stride, dilation, data_format)
    if winograd_padding is not None:
      outputs = winograd.conv3x3(inputs, _winograd_kernel(kernel), winograd_padding)
    elif dilation > 1:
      outputs = atrous_conv2d(inputs, kernel, dilation, padding, data_format)
    else:
      padded, conv_padding = _explicit_padding(inputs, padding, data_format)
      outputs = tf.nn.conv2d(padded, kernel, strides=strides, padding=conv_padding,
                             data_format=data_format)
    if batch_norm:
      outputs = batch_normalization(outputs, data_format, is_training)
    else:
      biases = _model_variable('biases', [depth], tf1.zeros_initializer())
      outputs = tf.nn.bias_add(outputs, tf.cast(biases, outputs.dtype), data_format=data_format)
    return activation(outputs) if activation is not None else outputs


def _winograd_padding(inputs, padding, kernel, stride, dilation, data_format):
  """The zero pixels per side (0 or 1) for net/winograd.conv3x3, or None for tf.nn.conv2d:
  Winograd inside convolution_algorithm('winograd'), for the layers it speeds up."""
  if current_convolution_algorithm() != 'winograd' or data_format != 'NHWC':
    return None
  if isinstance(padding, str):
    pixels = {'SAME': 1, 'VALID': 0}.get(padding.upper())
  else:
    pixels = int(padding)
  height, width = inputs.shape.as_list()[1:3]
  if pixels not in (0, 1) or height is None or width is None:
    return None
  output_size = (height + 2 * pixels - 2, width + 2 * pixels - 2)
  if not winograd.applies(kernel.shape.as_list(), output_size, stride, dilation, kernel.dtype):
    return None
  return pixels


def depthwise_conv2d(inputs, kernel_size, scope, stride=1, padding='SAME', data_format='NHWC',
                     activation=tf.nn.relu6, batch_norm=True, is_training=False):
  """Depthwise convolution (one k x k filter per channel) + batch norm or bias + activation.

  The depthwise half of a depthwise-separable convolution (MobileNet, SSDLite); the pointwise
  half is conv2d with kernel_size 1. Variables: ``<scope>/depthwise_weights`` [k, k, depth, 1]
  and ``<scope>/BatchNorm/...`` (or ``<scope>/biases``).

  Args:
    inputs: float [batch, height, width, depth] (NHWC) or [batch, depth, height, width] (NCHW),
      depth static.
    kernel_size: int, square kernel side.
    scope: variable scope name.
    stride: int, spatial stride.
    padding: 'SAME', 'VALID', or an int number of zero pixels on every spatial side.
    data_format: 'NHWC' or 'NCHW' (NCHW needs a GPU or oneDNN, net/kernel_support.py).
    activation: function applied last, or None.
    batch_norm: batch norm instead of a bias.
    is_training: Python bool, batch norm mode.

  Returns:
    tensor in data_format with the input's depth.
  """
  check_data_format(data_format)
  depth = inputs.shape[channel_axis(data_format)]
  if depth is None:
    raise ValueError('depthwise_conv2d %s needs a static input depth, got shape %s.'
                     % (scope, inputs.shape))
  with tf1.variable_scope(scope):
    kernel = _model_variable('depthwise_weights', [kernel_size, kernel_size, int(depth), 1], None)
    kernel = tf.cast(kernel, inputs.dtype)
    padded, conv_padding = _explicit_padding(inputs, padding, data_format)
    strides = [1, stride, stride, 1] if data_format == 'NHWC' else [1, 1, stride, stride]
    outputs = tf.nn.depthwise_conv2d(padded, kernel, strides=strides, padding=conv_padding,
                                     data_format=data_format)
    if batch_norm:
      outputs = batch_normalization(outputs, data_format, is_training)
    else:
      biases = _model_variable('biases', [int(depth)], tf1.zeros_initializer())
      outputs = tf.nn.bias_add(outputs, tf.cast(biases, outputs.dtype), data_format=data_format)
    return activation(outputs) if activation is not None else outputs


def _atrous_padding(kernel_size, rate, padding):
  """(before, after) zero pixels of one spatial side for a dilated 'SAME'/'VALID'/int padding."""
  if isinstance(padding, str):
    if padding.upper() == 'VALID':
      return 0, 0
    if padding.upper() != 'SAME':
      raise ValueError("padding must be 'SAME', 'VALID' or an int, got %r." % (padding,))
    total = (kernel_size - 1) * rate  # stride 1: the output keeps the input size
    return total // 2, total - total // 2
  return int(padding), int(padding)


def atrous_conv2d(inputs, kernel, rate, padding='SAME', data_format='NHWC'):
  """Stride-1 dilated convolution as a sum of 1x1 convolutions, one per kernel tap.

  Why not ``tf.nn.conv2d(..., dilations=rate)``: its filter gradient (Conv2DBackpropFilter) has
  no kernel in TensorFlow's default CPU implementation ("do not yet support dilation rates
  larger than 1"), only in oneDNN and on GPUs, so training would work on some machines only.
  Here every op (slice, 1x1 convolution, pad, add) has a gradient on every device, the kernel
  variable is the same [k, k, in, out] tensor, and the values are the same.

  Per spatial axis, output cell i is sum_t kernel[t] * x[i + rate * t - pad_before] (zero
  outside the image). Tap t therefore reads the image shifted by d = rate * t - pad_before, and
  only output cells i with 0 <= i + d < size see the image at all: that window of the input
  goes through a 1x1 convolution with kernel[t], is zero-padded back to the output size, and the
  taps are summed. Skipping the all-padding cells matters at fc6 (19x19, rate 6, 6 pixels of
  padding): 62% of the dense work, faster than the native op on a CPU without oneDNN
  (bench/dilated_conv.py). (tf.nn.convolution's space-to-batch rewrite also has gradients
  everywhere but computes the padding too, and its backward pass was 3-7x slower here.)

  Args:
    inputs: float [batch, height, width, depth] (NHWC) or [batch, depth, height, width] (NCHW)
      with static spatial size.
    kernel: [kernel_h, kernel_w, depth, out_depth] of the inputs' dtype.
    rate: int >= 1, dilation of both spatial axes.
    padding: 'SAME' (output size = input size), 'VALID', or an int of zero pixels per side.
    data_format: 'NHWC' or 'NCHW'.

  Returns:
    The convolution in data_format: [batch, out_h, out_w, out_depth] (NHWC) or
    [batch, out_depth, out_h, out_w] (NCHW), out = size + padding - rate * (kernel_size - 1).

  Raises:
    ValueError: for an unknown spatial size or an input too small for the dilated kernel.
  """
  check_data_format(data_format)
  spatial_axes = (1, 2) if data_format == 'NHWC' else (2, 3)
  sizes = [inputs.shape[axis] for axis in spatial_axes]
  if any(size is None for size in sizes):
    raise ValueError('atrous_conv2d needs a static spatial size, got shape %s.' % (inputs.shape,))
  kernel_sizes = [int(kernel.shape[0]), int(kernel.shape[1])]
  (out_h, taps_y), (out_w, taps_x) = [
      _tap_windows(int(size), kernel_size, rate, padding, kernel_sizes)
      for size, kernel_size in zip(sizes, kernel_sizes)]
  parts = []
  for a, tap_y in enumerate(taps_y):
    for b, tap_x in enumerate(taps_x):
      if tap_y is None or tap_x is None:
        continue  # this tap only ever reads padding
      part = tf.nn.conv2d(_spatial_slice(inputs, tap_y, tap_x, data_format),
                          kernel[a:a + 1, b:b + 1], strides=1, padding='VALID',
                          data_format=data_format)
      parts.append(_spatial_pad(part, tap_y, tap_x, out_h, out_w, data_format))
  if not parts:
    raise ValueError('atrous_conv2d: every tap of the kernel falls in the padding.')
  return tf.add_n(parts)


def _tap_windows(size, kernel_size, rate, padding, kernel_sizes):
  """One spatial axis: (output size, per tap (input start, output start, output end) or None)."""
  before, after = _atrous_padding(kernel_size, rate, padding)
  out_size = size + before + after - rate * (kernel_size - 1)
  if out_size < 1:
    raise ValueError('atrous_conv2d: input side %d is too small for a %dx%d kernel at rate %d.'
                     % (size, kernel_sizes[0], kernel_sizes[1], rate))
  taps = []
  for tap in range(kernel_size):
    shift = rate * tap - before
    start, end = max(0, -shift), min(out_size, size - shift)
    taps.append((start + shift, start, end) if end > start else None)
  return out_size, taps


def _spatial_slice(inputs, tap_y, tap_x, data_format):
  (y, y0, y1), (x, x0, x1) = tap_y, tap_x
  if data_format == 'NHWC':
    return inputs[:, y:y + y1 - y0, x:x + x1 - x0, :]
  return inputs[:, :, y:y + y1 - y0, x:x + x1 - x0]


def _spatial_pad(part, tap_y, tap_x, out_h, out_w, data_format):
  (_, y0, y1), (_, x0, x1) = tap_y, tap_x
  spatial = [[y0, out_h - y1], [x0, out_w - x1]]
  paddings = [[0, 0]] + spatial + [[0, 0]] if data_format == 'NHWC' else [[0, 0], [0, 0]] + spatial
  return tf.pad(part, paddings)


def max_pool(inputs, kernel_size, stride, padding='SAME', data_format='NHWC', name=None):
  """Square max pooling; 'SAME' rounds the output size up (ceil), like Caffe's pooling.

  Caveat (TF 2.15 CPU, oneDNN): the oneDNN max-pool primitive cache ignores the data format, so
  in one process an NCHW pool can reuse a primitive built for an NHWC pool of the same logical
  shape (or the reverse) and return wrong values. Use a single data_format per process on CPU;
  tests compare the two layouts across processes.

  Args:
    inputs: float32 4-D tensor in data_format.
    kernel_size, stride: ints.
    padding: 'SAME' or 'VALID'.
    data_format: 'NHWC' or 'NCHW'.
    name: op name.

  Returns:
    float32 4-D tensor in data_format.
  """
  check_data_format(data_format)
  return tf.nn.max_pool2d(inputs, ksize=kernel_size, strides=stride, padding=padding,
                          data_format=data_format, name=name)


def batch_normalization(inputs, data_format, is_training, scope='BatchNorm'):
  """Batch norm over the channel axis with moving averages updated through UPDATE_OPS.

  Training uses the batch statistics and appends the moving average updates to
  ``GraphKeys.UPDATE_OPS`` (the model_fn must run them with the train op); inference uses the
  moving averages.

  Args:
    inputs: float32 4-D tensor in data_format.
    data_format: 'NHWC' or 'NCHW'.
    is_training: Python bool.
    scope: variable scope name.

  Returns:
    float32 tensor of the same shape.
  """
  axis = channel_axis(data_format)
  depth = int(inputs.shape[axis])
  with tf1.variable_scope(scope):
    beta = _model_variable('beta', [depth], tf1.zeros_initializer())
    gamma = _model_variable('gamma', [depth], tf1.ones_initializer())
    # ON_READ + MEAN, as Keras does, so replicas under a distribution strategy keep their own
    # statistics and a read averages them.
    moving_kwargs = dict(trainable=False, synchronization=tf.VariableSynchronization.ON_READ,
                         aggregation=tf.VariableAggregation.MEAN)
    moving_mean = _model_variable('moving_mean', [depth], tf1.zeros_initializer(), **moving_kwargs)
    moving_variance = _model_variable('moving_variance', [depth], tf1.ones_initializer(),
                                      **moving_kwargs)
    # Fused kernel: several times faster on CPU than moments + batch_normalization, and it
    # accepts bfloat16 inputs with float32 statistics.
    outputs, mean, variance = tf1.nn.fused_batch_norm(
        inputs, gamma, beta, mean=None if is_training else moving_mean,
        variance=None if is_training else moving_variance, epsilon=BATCH_NORM_EPSILON,
        data_format=data_format, is_training=is_training)
    if is_training:
      decay = 1.0 - BATCH_NORM_MOMENTUM
      tf1.add_to_collection(tf1.GraphKeys.UPDATE_OPS,
                            moving_mean.assign_sub((moving_mean - mean) * decay))
      tf1.add_to_collection(tf1.GraphKeys.UPDATE_OPS,
                            moving_variance.assign_sub((moving_variance - variance) * decay))
    return outputs


def l2_normalization(inputs, scale_init, data_format='NHWC', scope='l2_norm'):
  """Normalizes every pixel's channel vector to unit L2 norm, then multiplies by a learned scale.

  ParseNet (Liu et al. 2015), used by SSD on conv4_3 (paper section 3.1): conv4_3 activations
  are much larger than those of later layers, so they are normalized and rescaled by a
  per-channel factor initialised to 20 and learned by back-propagation.

  Args:
    inputs: float32 4-D tensor in data_format with static depth.
    scale_init: float, initial value of every channel's scale.
    data_format: 'NHWC' or 'NCHW'.
    scope: variable scope; the variable is ``<scope>/scale`` of shape [depth].

  Returns:
    float32 tensor of the same shape: ``scale * x / sqrt(max(sum_c x^2, 1e-10))``.
  """
  axis = channel_axis(data_format)
  depth = int(inputs.shape[axis])
  broadcast_shape = [1, 1, 1, depth] if data_format == 'NHWC' else [1, depth, 1, 1]
  with tf1.variable_scope(scope):
    scale = _model_variable('scale', [depth], tf1.constant_initializer(scale_init))
    # In float32 even under mixed precision: the sum of squares overflows bfloat16's mantissa.
    normalized = tf.math.l2_normalize(tf.cast(inputs, tf.float32), axis=axis,
                                      epsilon=L2_NORM_EPSILON)
    return tf.cast(normalized * tf.reshape(scale, broadcast_shape), inputs.dtype)
