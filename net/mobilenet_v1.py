"""MobileNet V1 (Howard et al. 2017) as an SSD backbone, with Keras Applications layer names.

Architecture (paper table 1; Keras ``tf.keras.applications.MobileNet``): conv1 3x3 stride 2 with
32 filters, then 13 depthwise-separable blocks (``conv_dw_<i>`` 3x3 depthwise, ``conv_pw_<i>``
1x1 pointwise) with 64, 128/2, 128, 256/2, 256, 512/2, 5 x 512, 1024/2, 1024 outputs (/2: the
depthwise convolution has stride 2); batch norm and ReLU6 after every convolution, no biases.
Channel counts are ``int(depth * width_multiplier)`` (Keras ``alpha``).

SSD sources (TF OD API ssd_mobilenet_v1: Conv2d_11_pointwise and Conv2d_13_pointwise):
``conv_pw_11`` (stride 16: 19x19 at 300) and ``conv_pw_13`` (stride 32: 10x10). Not in the OD
API: ``--backbone_sources=stride8`` puts ``conv_pw_5`` (stride 8: 24x24 at 192, the last layer
at that stride, as VGG16's conv4_3 is) before them, for objects too small for a 16-pixel grid
(the quick model of `make demo`: README, "Results of make demo"). The weights are the same.

Padding: TF 'SAME' everywhere, as slim / the OD API. Keras pads the stride-2 layers by one
pixel at the bottom/right only, which is the same on even inputs (224) and one pixel smaller on
odd ones (75 -> 37 instead of 38 at 300); the weights are the same either way.

Variables below ``<model_scope>/mobilenet_v1/``: ``<layer>/weights`` or
``<layer>/depthwise_weights`` and ``<layer>/BatchNorm/{gamma,beta,moving_mean,
moving_variance}``, <layer> the Keras layer name; ``keras_name`` maps them to the Keras file.
"""

import collections

import tensorflow as tf

from net import backbones
from net import layers
from utility import image_convention
from utility import keras_weights

tf1 = tf.compat.v1

SCOPE = 'mobilenet_v1'
# Keras applications preprocess_input(mode='tf'): pixel / 127.5 - 1.
CONVENTION = image_convention.ImageConvention(mean_rgb=(127.5,) * 3, std_rgb=(127.5,) * 3)

_FIRST_DEPTH = 32
# (pointwise depth, depthwise stride) of blocks 1..13 (paper table 1).
_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
           (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
# --backbone_sources -> the pointwise layers returned as sources, finest first.
SOURCE_SETS = {'reference': ('conv_pw_11', 'conv_pw_13'),
               'stride8': ('conv_pw_5', 'conv_pw_11', 'conv_pw_13')}
# Keras Applications ImageNet weights exist for these alphas.
PRETRAINED_WIDTHS = (0.25, 0.5, 0.75, 1.0)


def scaled_depth(depth, width_multiplier):
  """Keras MobileNet's int(depth * alpha), at least 8."""
  if width_multiplier <= 0:
    raise ValueError('width_multiplier must be > 0, got %r.' % (width_multiplier,))
  return max(8, int(depth * width_multiplier))


def build_sources(images, options):
  """OrderedDict 'conv_pw_11' (stride 16), 'conv_pw_13' (stride 32) of MobileNet V1, after
  'conv_pw_5' (stride 8) with options.sources 'stride8'.

  Args:
    images: [batch, size, size, 3] in CONVENTION and options.data_format.
    options: net.backbones.BuildOptions (batch norm is always on).
  """
  wanted = SOURCE_SETS[options.sources]
  conv = dict(data_format=options.data_format, batch_norm=True,
              is_training=options.is_training, activation=tf.nn.relu6)
  sources = collections.OrderedDict()
  with tf1.variable_scope(SCOPE):
    net = layers.conv2d(images, scaled_depth(_FIRST_DEPTH, options.width_multiplier), 3,
                        'conv1', stride=2, **conv)
    for index, (depth, stride) in enumerate(_BLOCKS, start=1):
      net = layers.depthwise_conv2d(net, 3, 'conv_dw_%d' % index, stride=stride, **conv)
      net = layers.conv2d(net, scaled_depth(depth, options.width_multiplier), 1,
                          'conv_pw_%d' % index, **conv)
      if 'conv_pw_%d' % index in wanted:
        sources['conv_pw_%d' % index] = net
  return sources


_KERAS_WEIGHTS = {'weights': 'kernel', 'depthwise_weights': 'depthwise_kernel'}


def keras_name(relative_name):
  """'conv_dw_3/BatchNorm/gamma' -> 'conv_dw_3_bn/gamma'; 'conv1/weights' -> 'conv1/kernel'."""
  parts = relative_name.split('/')
  if len(parts) == 3 and parts[1] == 'BatchNorm':
    return '%s_bn/%s' % (parts[0], parts[2])
  return '%s/%s' % (parts[0], _KERAS_WEIGHTS.get(parts[1], parts[1]))


# Scaffold init_fn loading Keras Applications MobileNet .h5 weights (any alpha).
init_from_checkpoint = keras_weights.init_from_checkpoint_fn(SCOPE, keras_name)


BACKBONE = backbones.Backbone(
    name='mobilenet_v1', scope=SCOPE, convention=CONVENTION, build=build_sources,
    init_from_checkpoint=init_from_checkpoint, activation=tf.nn.relu6,
    pretrained_widths=PRETRAINED_WIDTHS, always_batch_norm=True, source_sets=tuple(SOURCE_SETS))
