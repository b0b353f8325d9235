"""The SSD network: VGG16 reduced-fc backbone, extra layers and per-source prediction heads.

Each architecture is data: an ``Architecture`` entry of ``ARCHITECTURES`` lists its extra blocks
(``ExtraBlock``: a 1x1 bottleneck then a k x k convolution). SSD300, SSD512 and smaller models
are rows of that table, built by the same code.

Sources for the heads, in order: conv4_3 after L2 normalization (scale initialised to 20), fc7,
then the output of every extra block. Each source gets one 3x3 convolution for box offsets
(k * 4 outputs) and one for class logits (k * num_classes), k = anchors per location of that
source. Predictions are flattened in (source, y, x, anchor) order, the order of the Caffe
reference's permute + flatten + concat and of the anchor generator in utility/anchors.py.

Variable scopes below ``<model_scope>`` (default: the architecture name, e.g. ``ssd300``):
``vgg_16/`` backbone (slim names), ``conv4_3_norm/scale``, ``extra_layers/conv8_1`` ...,
``box_heads/<source>``, ``class_heads/<source>`` with source in conv4_3, fc7, conv8_2, ...
"""

import collections

import numpy as np
import tensorflow as tf

from net import layers
from net import vgg

tf1 = tf.compat.v1

# ParseNet scale for conv4_3 (SSD paper section 3.1, Caffe `Normalize` scale_filler 20).
CONV4_3_NORM_SCALE_INIT = 20.0

# One extra block: `name`_1 is a 1x1 conv with depth_1x1 outputs (stride 1), `name`_2 a
# kernel_size conv with `depth` outputs, `stride`, and padding 'SAME', 'VALID' or an int number of
# pixels per side. Both use ReLU. The block's output (`name`_2) is a source for the heads.
ExtraBlock = collections.namedtuple(
    'ExtraBlock', ['name', 'depth_1x1', 'depth', 'kernel_size', 'stride', 'padding'])

# name: default model scope; image_size: the reference square input side in pixels.
Architecture = collections.namedtuple('Architecture', ['name', 'image_size', 'extra_blocks'])

ARCHITECTURES = {
    # docs/RECIPE.md, "Network (SSD300)": Caffe's AddExtraLayers. "pad 1" is one zero pixel on
    # every side (Caffe), not TF's 'SAME', which pads only bottom/right on an even input.
    'ssd300': Architecture('ssd300', 300, (
        ExtraBlock('conv8', 256, 512, 3, 2, 1),         # 19 -> 10
        ExtraBlock('conv9', 128, 256, 3, 2, 1),         # 10 -> 5
        ExtraBlock('conv10', 128, 256, 3, 1, 'VALID'),  # 5 -> 3
        ExtraBlock('conv11', 128, 256, 3, 1, 'VALID'),  # 3 -> 1
    )),
    # Caffe ssd_pascal_512.py: conv10_2 and conv11_2 strided with pad 1 too, plus conv12 (4x4,
    # pad 1).
    'ssd512': Architecture('ssd512', 512, (
        ExtraBlock('conv8', 256, 512, 3, 2, 1),         # 32 -> 16
        ExtraBlock('conv9', 128, 256, 3, 2, 1),         # 16 -> 8
        ExtraBlock('conv10', 128, 256, 3, 2, 1),        # 8 -> 4
        ExtraBlock('conv11', 128, 256, 3, 2, 1),        # 4 -> 2
        ExtraBlock('conv12', 128, 256, 4, 1, 1),        # 2 + 2 - 4 + 1 = 1
    )),
    # Not in the paper: a small model for quick from-scratch runs on a CPU (configs/quick.flags,
    # `make demo`). Same backbone and heads, thinner extras, 192x192 input, 5 sources
    # 24, 12, 6, 3, 1; default boxes come from --anchor_min_scale/--anchor_max_scale.
    'ssd_quick': Architecture('ssd_quick', 192, (
        ExtraBlock('conv8', 64, 128, 3, 2, 1),          # 12 -> 6
        ExtraBlock('conv9', 64, 128, 3, 2, 1),          # 6 -> 3
        ExtraBlock('conv10', 64, 128, 3, 1, 'VALID'),   # 3 -> 1
    )),
}

# --extra_layer_padding: how the strided extra convolutions pad. 'caffe' (default) uses each
# block's padding as written above; 'same' gives every strided block TF's 'SAME' instead (the
# same output sizes, the pad on the bottom/right of an even input), which is what model_dirs
# written before this project followed Caffe were trained with.
EXTRA_LAYER_PADDINGS = ('caffe', 'same')


def _block_padding(block, extra_layer_padding):
  if extra_layer_padding not in EXTRA_LAYER_PADDINGS:
    raise ValueError('extra_layer_padding must be one of %s, got %r.'
                     % (', '.join(EXTRA_LAYER_PADDINGS), extra_layer_padding))
  if extra_layer_padding == 'same' and block.stride > 1:
    return 'SAME'
  return block.padding


# Parameter groups reported by count_parameters: part -> scope below the model scope.
PARAMETER_PARTS = (('backbone', vgg.BACKBONE_SCOPE), ('l2norm', 'conv4_3_norm'),
                   ('extras', 'extra_layers'), ('box_heads', 'box_heads'),
                   ('class_heads', 'class_heads'))


def get_architecture(architecture):
  """Returns the Architecture for a name in ARCHITECTURES, or an Architecture as given."""
  if isinstance(architecture, Architecture):
    return architecture
  if architecture not in ARCHITECTURES:
    raise ValueError('Unknown architecture %r: use one of %s.'
                     % (architecture, ', '.join(sorted(ARCHITECTURES))))
  return ARCHITECTURES[architecture]


def source_names(architecture):
  """Names of the head sources in order: ['conv4_3', 'fc7', 'conv8_2', ...]."""
  arch = get_architecture(architecture)
  return ['conv4_3', 'fc7'] + ['%s_2' % block.name for block in arch.extra_blocks]


def _conv_output_size(size, kernel_size, stride, padding):
  if padding == 'SAME':
    return -(-size // stride)
  pad = 0 if padding == 'VALID' else int(padding)
  return (size + 2 * pad - kernel_size) // stride + 1


def _feature_map_sizes_unchecked(arch, image_size):
  size = image_size
  for _ in range(3):  # pool1-3, 2x2 stride 2 'SAME' (ceil).
    size = -(-size // 2)
  sizes = [size]  # conv4_3
  sizes.append(-(-size // 2))  # pool4 -> fc7; pool5 3x3/1 'SAME' and fc6/fc7 keep the size.
  for block in arch.extra_blocks:
    sizes.append(_conv_output_size(sizes[-1], block.kernel_size, block.stride, block.padding))
  return sizes


def feature_map_sizes(architecture, image_size=None):
  """Side lengths of the source feature maps for a square input, without building a graph.

  Args:
    architecture: a name in ARCHITECTURES or an Architecture.
    image_size: int, input side in pixels; defaults to the architecture's image_size.

  Returns:
    list of ints, one per source: [38, 19, 10, 5, 3, 1] for ssd300 at 300,
    [64, 32, 16, 8, 4, 2, 1] for ssd512 at 512.

  Raises:
    ValueError: if the image is too small for some layer (the 'VALID' layers need room).
  """
  arch = get_architecture(architecture)
  image_size = arch.image_size if image_size is None else int(image_size)
  sizes = _feature_map_sizes_unchecked(arch, image_size)
  if min(sizes) < 1:
    smallest = next(s for s in range(1, 4096) if min(_feature_map_sizes_unchecked(arch, s)) >= 1)
    raise ValueError('image_size %d is too small for %s (feature maps %s); use at least %d.'
                     % (image_size, arch.name, sizes, smallest))
  return sizes


def _extra_layers(net, arch, data_format, batch_norm, is_training, extra_layer_padding):
  """Builds the extra blocks on fc7; returns the list of their outputs (the `name`_2 layers)."""
  outputs = []
  with tf1.variable_scope('extra_layers'):
    for block in arch.extra_blocks:
      net = layers.conv2d(net, block.depth_1x1, 1, scope=block.name + '_1',
                          data_format=data_format, batch_norm=batch_norm, is_training=is_training)
      net = layers.conv2d(net, block.depth, block.kernel_size, scope=block.name + '_2',
                          stride=block.stride, padding=_block_padding(block, extra_layer_padding),
                          data_format=data_format, batch_norm=batch_norm,
                          is_training=is_training)
      outputs.append(net)
  return outputs


def _head(source, depth_per_anchor, num_anchors_here, scope, data_format):
  """3x3 linear conv, then flatten to [batch, height * width * anchors, depth_per_anchor]."""
  net = layers.conv2d(source, num_anchors_here * depth_per_anchor, 3, scope=scope,
                      data_format=data_format, activation=None)
  if data_format == 'NCHW':
    # Same (y, x, anchor) order in both layouts: move channels last before flattening.
    net = tf.transpose(net, [0, 2, 3, 1])
  height, width = int(net.shape[1]), int(net.shape[2])
  return tf.reshape(net, [-1, height * width * num_anchors_here, depth_per_anchor])


def _heads(sources, names, anchors_per_location, depth_per_anchor, scope, data_format):
  """One head per source; returns [batch, num_anchors, depth_per_anchor] over all sources."""
  with tf1.variable_scope(scope):
    outputs = [_head(source, depth_per_anchor, num_anchors_here, name, data_format)
               for source, name, num_anchors_here in zip(sources, names, anchors_per_location)]
    return tf.concat(outputs, axis=1)


def _check_build_args(arch, images, num_classes, anchors_per_location, data_format):
  layers.check_data_format(data_format)
  shape = images.shape
  if shape.rank != 4 or shape[3] != 3 or shape[1] is None or shape[1] != shape[2]:
    raise ValueError('build_ssd needs images float32 [batch, size, size, 3] (NHWC, static square '
                     'size), got shape %s.' % (shape,))
  if num_classes is None or int(num_classes) < 2:
    raise ValueError('num_classes counts the background and must be >= 2, got %r.'
                     % (num_classes,))
  num_sources = len(arch.extra_blocks) + 2
  if anchors_per_location is None or len(anchors_per_location) != num_sources:
    raise ValueError('anchors_per_location must give one count per source of %s (%d: %s), got %r; '
                     'take it from the anchor generator of the same preset.'
                     % (arch.name, num_sources, ', '.join(source_names(arch)),
                        anchors_per_location))


def build_ssd(images, architecture='ssd300', num_classes=21, anchors_per_location=None,
              data_format='NHWC', width_multiplier=1.0, extra_batch_norm=False, is_training=False,
              model_scope=None, backbone_batch_norm=False, compute_dtype='float32',
              extra_layer_padding='caffe', weight_init='xavier'):
  """Builds the SSD network under `model_scope`.

  Args:
    images: float32 [batch, size, size, 3], NHWC, RGB minus vgg.IMAGE_MEAN_RGB
      (vgg.subtract_image_mean); batch may be unknown, size must be static.
    architecture: a name in ARCHITECTURES ('ssd300', 'ssd512') or an Architecture.
    num_classes: int, number of classes including the background (21 for VOC).
    anchors_per_location: list of ints, anchors per feature-map cell for each source, from the
      anchor generator (reference: ssd300 [4, 6, 6, 6, 4, 4], ssd512 [4, 6, 6, 6, 6, 4, 4]).
    data_format: 'NHWC' or 'NCHW' for the convolutions; images are transposed inside for NCHW.
      Outputs are the same in both, and so are the variables (kernels are HWIO).
    width_multiplier: scales the backbone's channel counts (vgg.scaled_depth); reference 1.0.
    extra_batch_norm: batch norm in the extra layers (not in the reference).
    is_training: Python bool, batch norm mode.
    model_scope: variable scope of the whole model; defaults to the architecture name.
    backbone_batch_norm: batch norm in the VGG backbone (not in the reference; for small
      models trained from scratch).
    compute_dtype: 'float32' (reference) or 'bfloat16': mixed precision, the convolutions run
      in bfloat16 on float32 variables (about 1.8x faster on CPUs with AVX512_BF16 and on
      recent GPUs); L2 norm, batch-norm statistics and the outputs stay float32.
    extra_layer_padding: 'caffe' (reference: each block's own padding, one pixel on every side
      for the strided blocks) or 'same' (TF 'SAME' on the strided blocks; EXTRA_LAYER_PADDINGS).
    weight_init: initializer of every kernel, a key of layers.KERNEL_INITIALIZERS ('xavier',
      Caffe's filler); only fresh variables see it.

  Returns:
    A dict:
      'box_offsets': float32 [batch, num_anchors, 4], encoded offsets (ty, tx, th, tw) per anchor.
      'class_logits': float32 [batch, num_anchors, num_classes], unnormalized scores, 0 =
        background.
      'feature_maps': list of float32 source tensors in data_format (conv4_3 after L2 norm).
      'feature_map_sizes': list of ints, side of each source map.
    num_anchors = sum(size^2 * k) over sources, 8732 for ssd300 at 300, 24564 for ssd512 at 512.

  Raises:
    ValueError: on a bad argument, with how to fix it.
  """
  arch = get_architecture(architecture)
  _check_build_args(arch, images, num_classes, anchors_per_location, data_format)
  sizes = feature_map_sizes(arch, int(images.shape[1]))
  with tf1.variable_scope(model_scope or arch.name,
                          initializer=layers.kernel_initializer(weight_init)):
    net = tf.cast(images, tf.as_dtype(compute_dtype))
    net = net if data_format == 'NHWC' else tf.transpose(net, [0, 3, 1, 2])
    end_points = vgg.vgg16_reduced_fc(net, data_format, width_multiplier, is_training,
                                      batch_norm=backbone_batch_norm)
    conv4_3 = layers.l2_normalization(end_points['conv4_3'], CONV4_3_NORM_SCALE_INIT,
                                      data_format, scope='conv4_3_norm')
    sources = [conv4_3, end_points['fc7']]
    sources += _extra_layers(end_points['fc7'], arch, data_format, extra_batch_norm, is_training,
                             extra_layer_padding)
    names = source_names(arch)
    box_offsets = _heads(sources, names, anchors_per_location, 4, 'box_heads', data_format)
    class_logits = _heads(sources, names, anchors_per_location, int(num_classes), 'class_heads',
                          data_format)
  return {'box_offsets': tf.cast(box_offsets, tf.float32),
          'class_logits': tf.cast(class_logits, tf.float32), 'feature_maps': sources,
          'feature_map_sizes': sizes}


def count_parameters(model_scope, variables=None):
  """Counts trainable parameters of a built model, split by part.

  Args:
    model_scope: the scope given to (or defaulted by) build_ssd, e.g. 'ssd300'.
    variables: variables to count; defaults to the graph's trainable variables.

  Returns:
    An OrderedDict: 'backbone', 'l2norm', 'extras', 'box_heads', 'class_heads' -> int, then
    'total' -> int.

  Raises:
    ValueError: if a variable under model_scope belongs to none of the parts, or none is found.
  """
  if variables is None:
    variables = tf1.trainable_variables()
  prefix = model_scope + '/'
  counts = collections.OrderedDict((part, 0) for part, _ in PARAMETER_PARTS)
  for variable in variables:
    if not variable.name.startswith(prefix):
      continue
    relative = variable.name[len(prefix):]
    part = next((p for p, scope in PARAMETER_PARTS if relative.startswith(scope + '/')), None)
    if part is None:
      raise ValueError('Variable %s belongs to no parameter part %s.'
                       % (variable.name, [scope for _, scope in PARAMETER_PARTS]))
    counts[part] += int(np.prod(variable.shape.as_list()))
  counts['total'] = sum(counts.values())
  if counts['total'] == 0:
    raise ValueError('No trainable variables under %r: build the model first.' % (model_scope,))
  return counts
