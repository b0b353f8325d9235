"""MobileNet V2 (Sandler et al. 2018) as an SSD / SSDLite backbone, with Keras layer names.

Architecture (paper table 2; Keras ``tf.keras.applications.MobileNetV2``): ``Conv1`` 3x3
stride 2 with 32 filters, 17 inverted-residual blocks (t, c, n, s) = (1, 16, 1, 1),
(6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
then ``Conv_1`` 1x1 with 1280 filters. A block is a 1x1 expansion to t times its input
(``block_<i>_expand``, absent in block 0 ``expanded_conv``), a 3x3 depthwise convolution
(``..._depthwise``, stride s on the first block of a group) and a linear 1x1 projection
(``..._project``), with a residual connection when the shapes agree. Batch norm everywhere,
ReLU6 except after the projections. Depths are ``make_divisible(c * width, 8)``; Conv_1 keeps
1280 below width 1.

SSDLite sources (MobileNetV2 paper section 6.2; OD API ssdlite_mobilenet_v2
``layer_15/expansion_output`` and ``layer_19``): ``block_13_expand`` (the expansion of the first
stride-32 block, still at stride 16: 19x19 and 576 channels at 300) and ``Conv_1`` (stride 32:
10x10, 1280 channels).

Padding: TF 'SAME', which equals Keras' explicit ``correct_pad`` on every input size.
"""

import collections

import tensorflow as tf

from net import backbones
from net import layers
from net import mobilenet_v1
from utility import image_convention
from utility import keras_weights

tf1 = tf.compat.v1

SCOPE = 'mobilenet_v2'
CONVENTION = image_convention.ImageConvention(mean_rgb=(127.5,) * 3, std_rgb=(127.5,) * 3)

_FIRST_DEPTH = 32
_LAST_DEPTH = 1280
# (expansion t, output channels c, repeats n, first stride s): paper table 2.
_GROUPS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1))
SOURCES = ('block_13_expand', 'Conv_1')
PRETRAINED_WIDTHS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)


def make_divisible(value, divisor=8):
  """The channel rounding of the reference (and Keras): nearest multiple of divisor, at least
  divisor, never more than 10% below value."""
  rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
  return rounded + divisor if rounded < 0.9 * value else rounded


def _block_prefix(index):
  return 'block_%d_' % index if index else 'expanded_conv_'


def _inverted_residual(net, index, expansion, depth, stride, conv, sources):
  prefix = _block_prefix(index)
  in_depth = int(net.shape[layers.channel_axis(conv['data_format'])])
  block_input = net
  if index:
    net = layers.conv2d(net, expansion * in_depth, 1, prefix + 'expand', **conv)
    if prefix + 'expand' in SOURCES:
      sources[prefix + 'expand'] = net
  net = layers.depthwise_conv2d(net, 3, prefix + 'depthwise', stride=stride, **conv)
  net = layers.conv2d(net, depth, 1, prefix + 'project', **dict(conv, activation=None))
  if stride == 1 and in_depth == depth:
    net = tf.add(block_input, net, name=prefix + 'add')
  return net


def build_sources(images, options):
  """OrderedDict 'block_13_expand' (stride 16), 'Conv_1' (stride 32) of MobileNet V2.

  Args:
    images: [batch, size, size, 3] in CONVENTION and options.data_format.
    options: net.backbones.BuildOptions (batch norm is always on).
  """
  width = options.width_multiplier
  if width <= 0:
    raise ValueError('width_multiplier must be > 0, got %r.' % (width,))
  conv = dict(data_format=options.data_format, batch_norm=True,
              is_training=options.is_training, activation=tf.nn.relu6)
  sources = collections.OrderedDict()
  with tf1.variable_scope(SCOPE):
    net = layers.conv2d(images, make_divisible(_FIRST_DEPTH * width), 3, 'Conv1', stride=2,
                        **conv)
    index = 0
    for expansion, depth, repeats, first_stride in _GROUPS:
      for repeat in range(repeats):
        net = _inverted_residual(net, index, expansion, make_divisible(depth * width),
                                 first_stride if repeat == 0 else 1, conv, sources)
        index += 1
    last_depth = make_divisible(_LAST_DEPTH * width) if width > 1.0 else _LAST_DEPTH
    sources['Conv_1'] = layers.conv2d(net, last_depth, 1, 'Conv_1', **conv)
  return sources


def keras_name(relative_name):
  """'Conv1/BatchNorm/gamma' -> 'bn_Conv1/gamma'; 'block_3_expand/BatchNorm/beta' ->
  'block_3_expand_BN/beta'; 'Conv_1/BatchNorm/...' -> 'Conv_1_bn/...'; kernels as in V1."""
  parts = relative_name.split('/')
  if len(parts) == 3 and parts[1] == 'BatchNorm':
    layer = parts[0]
    bn_layer = {'Conv1': 'bn_Conv1', 'Conv_1': 'Conv_1_bn'}.get(layer, layer + '_BN')
    return '%s/%s' % (bn_layer, parts[2])
  return mobilenet_v1.keras_name(relative_name)


# Scaffold init_fn loading Keras Applications MobileNetV2 .h5 weights (any alpha).
init_from_checkpoint = keras_weights.init_from_checkpoint_fn(SCOPE, keras_name)


BACKBONE = backbones.Backbone(
    name='mobilenet_v2', scope=SCOPE, convention=CONVENTION, build=build_sources,
    init_from_checkpoint=init_from_checkpoint, activation=tf.nn.relu6,
    pretrained_widths=PRETRAINED_WIDTHS, always_batch_norm=True)
