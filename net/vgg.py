"""VGG16 with reduced fully connected layers: the SSD backbone.

Architecture (Simonyan & Zisserman 2015, configuration D; SSD paper section 3 and the authors'
Caffe ``VGGNet/VGG_ILSVRC_16_layers_fc_reduced``): thirteen 3x3 'SAME' convolutions in five
blocks (2x64, 2x128, 3x256, 3x512, 3x512) with ReLU; pool1-4 are 2x2 stride 2 'SAME' (ceil, so
pool3 turns 75 into 38 for a 300 input); pool5 is 3x3 stride 1 'SAME'; fc6 becomes a 3x3
convolution with 1024 outputs and dilation 6, fc7 a 1x1 convolution with 1024 outputs. No batch
norm, no dropout (reference).

Variable names are TF-slim's ``vgg_16/conv1/conv1_1/weights`` ... ``vgg_16/fc7/biases`` below the
caller's scope, so slim's ImageNet ``vgg_16.ckpt`` maps by prefix (see utility/checkpoint.py).

As an SSD backbone (``BACKBONE``, net/backbones.py) its sources are conv4_3 after the ParseNet
L2 normalization (scale ``<model_scope>/conv4_3_norm/scale``, initialised to 20) and fc7.

Stems (``--stem``): 'reference' is conv1_1, conv1_2 at the input resolution, then pool1.
'strided' (not in the reference, no pretrained weights) is one 3x3 stride-2 convolution
``conv1/conv1_1`` of conv1's depth in their place, with the same output size as pool1, for
from-scratch models: in the quarter-width quick model the two full-resolution layers are 101 of
875 million multiply-adds per image and a larger share of its time (README, "Results of make
demo").

Image convention of the backbone weights
----------------------------------------
The pretrained weights are TF-slim's ``vgg_16.ckpt``: RGB channel order, pixel values in
[0, 255] minus the per-channel ImageNet mean ``IMAGE_MEAN_RGB``, no division by a standard
deviation (``CONVENTION``). Training, evaluation, export and the demo take it from
``BACKBONE.convention``.
"""

import collections

import tensorflow as tf

from net import backbones
from net import layers
from utility import checkpoint
from utility import image_convention

tf1 = tf.compat.v1

IMAGE_MEAN_RGB = (123.68, 116.78, 103.94)  # slim vgg_preprocessing _R_MEAN, _G_MEAN, _B_MEAN
CONVENTION = image_convention.ImageConvention(mean_rgb=IMAGE_MEAN_RGB, channel_order='rgb')

BACKBONE_SCOPE = 'vgg_16'

# ParseNet scale for conv4_3 (SSD paper section 3.1, Caffe `Normalize` scale_filler 20).
CONV4_3_NORM_SCALE_INIT = 20.0

# (block name, number of 3x3 convolutions, depth at width 1.0): VGG16 configuration D.
_CONV_BLOCKS = (('conv1', 2, 64), ('conv2', 2, 128), ('conv3', 3, 256), ('conv4', 3, 512),
                ('conv5', 3, 512))
STEMS = (backbones.REFERENCE_STEM, 'strided')
_FC_DEPTH = 1024       # fc6 and fc7 after the reduction 4096 -> 1024 (every 4th filter).
_FC6_DILATION = 6      # 7x7 fc6 decimated to 3x3 by taking every 3rd tap: dilation 3 * 2 = 6.
_MIN_DEPTH = 8


def scaled_depth(depth, width_multiplier):
  """Channel count at a width multiplier: depth * multiplier rounded half up, at least 8.

  Example: width 1/16 gives conv1 8 (4 raised to 8), conv3 16, conv4 32, fc6 64.
  """
  if width_multiplier <= 0:
    raise ValueError('width_multiplier must be > 0, got %r.' % (width_multiplier,))
  return max(_MIN_DEPTH, int(depth * width_multiplier + 0.5))


def vgg16_reduced_fc(images, data_format='NHWC', width_multiplier=1.0, is_training=False,
                     batch_norm=False, stem=backbones.REFERENCE_STEM):
  """Builds VGG16 reduced-fc under the variable scope 'vgg_16' of the current scope.

  Args:
    images: float32 [batch, height, width, 3] (NHWC) or [batch, 3, height, width] (NCHW),
      already in the backbone convention (``subtract_image_mean``) and already in data_format.
    data_format: 'NHWC' or 'NCHW'.
    width_multiplier: scales every channel count (``scaled_depth``); 1.0 is the reference and
      the only width the pretrained checkpoint fits.
    is_training: Python bool, batch norm mode (the reference has no batch norm or dropout).
    batch_norm: batch norm after every convolution instead of biases; not in the reference
      (no pretrained weights exist for it), for small models trained from scratch.
    stem: a name in STEMS: 'reference', or 'strided' (conv1_1 with stride 2, no conv1_2 and
      no pool1).

  Returns:
    A dict of end points, layer name -> float32 tensor in data_format: 'conv1_1' ... 'conv5_3',
    'pool1' ... 'pool5', 'fc6', 'fc7' (the strided stem: no 'conv1_2', and 'pool1' is
    'conv1_1'). SSD uses 'conv4_3' (stride 8) and 'fc7' (stride 16).
  """
  layers.check_data_format(data_format)
  if stem not in STEMS:
    raise ValueError('VGG16 has no stem %r: use one of %s.' % (stem, ', '.join(STEMS)))
  strided = stem == 'strided'
  end_points = {}
  net = images
  with tf1.variable_scope(BACKBONE_SCOPE):
    for block_index, (block, num_convs, depth) in enumerate(_CONV_BLOCKS):
      first_strided = strided and block_index == 0
      with tf1.variable_scope(block):
        for conv_index in range(1, 2 if first_strided else num_convs + 1):
          name = '%s_%d' % (block, conv_index)
          net = layers.conv2d(net, scaled_depth(depth, width_multiplier), 3, scope=name,
                              stride=2 if first_strided else 1, data_format=data_format,
                              batch_norm=batch_norm, is_training=is_training)
          end_points[name] = net
      pool_name = 'pool%d' % (block_index + 1)
      if block_index == 4:
        # pool5 keeps the 19x19 resolution so fc6/fc7 stay dense (SSD paper section 3).
        net = layers.max_pool(net, 3, 1, 'SAME', data_format, name=pool_name)
      elif not first_strided:  # a strided conv1_1 subsamples in pool1's place
        net = layers.max_pool(net, 2, 2, 'SAME', data_format, name=pool_name)
      end_points[pool_name] = net
    fc_depth = scaled_depth(_FC_DEPTH, width_multiplier)
    net = layers.conv2d(net, fc_depth, 3, scope='fc6', dilation=_FC6_DILATION,
                        data_format=data_format, batch_norm=batch_norm, is_training=is_training)
    end_points['fc6'] = net
    net = layers.conv2d(net, fc_depth, 1, scope='fc7', data_format=data_format,
                        batch_norm=batch_norm, is_training=is_training)
    end_points['fc7'] = net
  return end_points


def build_sources(images, options):
  """The SSD sources of VGG16: OrderedDict 'conv4_3' (L2-normalized, stride 8), 'fc7' (16).

  Args:
    images: [batch, size, size, 3] in CONVENTION and options.data_format.
    options: net.backbones.BuildOptions.
  """
  end_points = vgg16_reduced_fc(images, options.data_format, options.width_multiplier,
                                options.is_training, batch_norm=options.batch_norm,
                                stem=options.stem)
  conv4_3 = layers.l2_normalization(end_points['conv4_3'], CONV4_3_NORM_SCALE_INIT,
                                    options.data_format, scope='conv4_3_norm')
  return collections.OrderedDict([('conv4_3', conv4_3), ('fc7', end_points['fc7'])])


def init_from_checkpoint(checkpoint_path, model_scope, model_config, train_config):
  """Scaffold init_fn loading slim vgg_16.ckpt (full fc, decimated) or a reduced copy."""
  return checkpoint.vgg_init_fn(
      checkpoint_path, model_scope, width_multiplier=model_config.width_multiplier,
      checkpoint_model_scope=train_config.checkpoint_model_scope,
      exclude_scopes=train_config.checkpoint_exclude_scopes)


BACKBONE = backbones.Backbone(
    name='vgg16', scope=BACKBONE_SCOPE, convention=CONVENTION, build=build_sources,
    init_from_checkpoint=init_from_checkpoint, activation=tf.nn.relu,
    extra_scopes=(('l2norm', 'conv4_3_norm'),), stems=STEMS)
