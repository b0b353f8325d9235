"""The SSD network: a backbone's sources, extra layers and per-source prediction heads.

The backbone (net/backbones.py: VGG16 by default, MobileNet V1/V2) gives an ordered mapping of
source feature maps. Each architecture is data: an ``Architecture`` entry of ``ARCHITECTURES``
names its default backbone and lists the extra blocks built on the backbone's last source
(``ExtraBlock``: a 1x1 bottleneck then a k x k convolution). SSD300, SSD512, SSDLite and a quick
model are rows of that table, built by the same code. With another backbone than the
architecture's own, the extras are the OD API's feature-map generator: a 1x1 convolution of
half depth then a 3x3 stride-2 one per depth of ``extra_depths``.

Each source gets a box head (k * 4 outputs) and a class head (k * num_classes), k = anchors per
location of that source: a 3x3 convolution (SSD), or for SSDLite a 3x3 depthwise convolution
then a 1x1 one (MobileNetV2 paper, section 6.2). Extra blocks of SSDLite are depthwise-separable
too. Predictions are flattened in (source, y, x, anchor) order, the order of the Caffe
reference's permute + flatten + concat and of the anchor generator in utility/anchors.py.

Variable scopes below ``<model_scope>`` (default: the architecture name, e.g. ``ssd300``): the
backbone's (``vgg_16/`` with slim names, and ``conv4_3_norm/scale``), ``extra_layers/conv8_1``
..., ``box_heads/<source>``, ``class_heads/<source>`` with source in conv4_3, fc7, conv8_2, ...

Grid sizes are never computed by hand: ``feature_map_sizes`` builds the sources on a
placeholder and reads their static shapes, so a new backbone needs no size arithmetic.
"""

import collections
import functools

import numpy as np
import tensorflow as tf

from net import backbones
from net import layers

tf1 = tf.compat.v1

# One extra block: `name`_1 is a 1x1 conv with depth_1x1 outputs (stride 1), `name`_2 a
# kernel_size conv with `depth` outputs, `stride`, and padding 'SAME', 'VALID' or an int number of
# pixels per side. Both use ReLU. The block's output (`name`_2) is a source for the heads.
ExtraBlock = collections.namedtuple(
    'ExtraBlock', ['name', 'depth_1x1', 'depth', 'kernel_size', 'stride', 'padding'])

# name: default model scope; image_size: the reference square input side in pixels;
# backbone: its default --backbone; extra_blocks: the extras on that backbone; extra_depths:
# the extras' depths on any other backbone (OD API ssd_mobilenet_v1 layer_depth 512, 256, 256,
# 128 after the two backbone sources); separable: SSDLite (depthwise-separable extras and heads).
Architecture = collections.namedtuple(
    'Architecture', ['name', 'image_size', 'extra_blocks', 'backbone', 'extra_depths',
                     'separable'])
Architecture.__new__.__defaults__ = ('vgg16', (512, 256, 256, 128), False)

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
    ), extra_depths=(128, 128, 128)),
    # SSDLite (MobileNetV2 paper section 6.2; OD API ssdlite_mobilenet_v2): sources
    # layer_15/expansion_output (19x19 at 300) and layer_19 (10x10), then four separable
    # extras 512, 256, 256, 128 down to 1x1.
    'ssdlite': Architecture('ssdlite', 300, None, backbone='mobilenet_v2', separable=True),
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


# Parameter groups of count_parameters after the backbone's own: part -> scope below the model
# scope.
HEAD_PARAMETER_PARTS = (('extras', 'extra_layers'), ('box_heads', 'box_heads'),
                        ('class_heads', 'class_heads'))


def parameter_parts(backbone='vgg16'):
  """(part, scope) pairs: the backbone's, then extras and heads (VGG: backbone, l2norm, ...)."""
  return backbones.get(backbone).parameter_parts() + HEAD_PARAMETER_PARTS


def get_architecture(architecture):
  """Returns the Architecture for a name in ARCHITECTURES, or an Architecture as given."""
  if isinstance(architecture, Architecture):
    return architecture
  if architecture not in ARCHITECTURES:
    raise ValueError('Unknown architecture %r: use one of %s.'
                     % (architecture, ', '.join(sorted(ARCHITECTURES))))
  return ARCHITECTURES[architecture]


def backbone_name(architecture, backbone=''):
  """The backbone a model runs: `backbone` if given, else the architecture's default."""
  return backbone or get_architecture(architecture).backbone


def extra_blocks(architecture, backbone=''):
  """The ExtraBlocks built on the last source of `backbone` for this architecture."""
  arch = get_architecture(architecture)
  if backbone_name(arch, backbone) == arch.backbone and arch.extra_blocks is not None:
    return arch.extra_blocks
  # OD API feature-map generator (ssd_mobilenet_v1/v2, ssdlite): 1x1 at half depth, then 3x3
  # stride 2; "pad 1" here, TF 'SAME' with --extra_layer_padding=same (same sizes).
  return tuple(ExtraBlock('extra%d' % (index + 1), depth // 2, depth, 3, 2, 1)
               for index, depth in enumerate(arch.extra_depths))


def source_names(architecture, backbone='', backbone_sources=backbones.REFERENCE_SOURCES):
  """Names of the head sources in order: ['conv4_3', 'fc7', 'conv8_2', ...] for ssd300."""
  arch = get_architecture(architecture)
  return list(_probe_sources(arch, backbone_name(arch, backbone), arch.image_size, 'caffe',
                             backbone_sources)[0])


def _backbone_options(data_format, width_multiplier, is_training, batch_norm, backbone, stem,
                      backbone_sources):
  backbone.check_stem(stem)
  backbone.check_sources(backbone_sources)
  return backbones.BuildOptions(data_format=data_format, width_multiplier=width_multiplier,
                                is_training=is_training,
                                batch_norm=bool(batch_norm or backbone.always_batch_norm),
                                stem=stem, sources=backbone_sources)


def build_feature_maps(images, architecture='ssd300', backbone='', data_format='NHWC',
                       width_multiplier=1.0, extra_batch_norm=False, is_training=False,
                       backbone_batch_norm=False, compute_dtype='float32',
                       extra_layer_padding='caffe', stem=backbones.REFERENCE_STEM,
                       backbone_sources=backbones.REFERENCE_SOURCES):
  """Backbone sources + extra layers, in the current variable scope.

  Args: as build_ssd.

  Returns:
    collections.OrderedDict source name -> tensor in data_format and compute_dtype, finest
    first: the backbone's sources, then each extra block's output (`name`_2).
  """
  arch = get_architecture(architecture)
  backbone = backbones.get(backbone_name(arch, backbone))
  net = tf.cast(images, tf.as_dtype(compute_dtype))
  net = net if data_format == 'NHWC' else tf.transpose(net, [0, 3, 1, 2])
  sources = backbone.build(net, _backbone_options(data_format, width_multiplier, is_training,
                                                  backbone_batch_norm, backbone, stem,
                                                  backbone_sources))
  sources = collections.OrderedDict(sources)
  if not sources:
    raise ValueError('Backbone %r built no source feature maps.' % backbone.name)
  blocks = extra_blocks(arch, backbone.name)
  outputs = _extra_layers(list(sources.values())[-1], blocks, arch.separable, backbone.activation,
                          data_format, extra_batch_norm, is_training, extra_layer_padding)
  for block, output in zip(blocks, outputs):
    sources['%s_2' % block.name] = output
  return sources


@functools.lru_cache(maxsize=64)
def _probe_sources(arch, backbone, image_size, extra_layer_padding, backbone_sources):
  """(source names, sides) from the static shapes of the sources built on a placeholder (a
  backbone's stems keep its source sizes; its source sets do not)."""
  with tf.Graph().as_default():
    images = tf1.placeholder(tf.float32, [1, image_size, image_size, 3])
    with tf1.variable_scope('probe'):
      sources = build_feature_maps(images, arch, backbone,
                                   extra_layer_padding=extra_layer_padding,
                                   backbone_sources=backbone_sources)
    return (tuple(sources),
            tuple(tensor.shape[1] if tensor.shape[1] is None else int(tensor.shape[1])
                  for tensor in sources.values()))


def _fits(arch, backbone, image_size, extra_layer_padding, backbone_sources):
  try:
    sizes = _probe_sources(arch, backbone, image_size, extra_layer_padding, backbone_sources)[1]
  except ValueError:
    return False
  return min(sizes) >= 1


def feature_map_sizes(architecture, image_size=None, backbone='', extra_layer_padding='caffe',
                      backbone_sources=backbones.REFERENCE_SOURCES):
  """Side lengths of the source feature maps for a square input, read off the built sources.

  Args:
    architecture: a name in ARCHITECTURES or an Architecture.
    image_size: int, input side in pixels; defaults to the architecture's image_size.
    backbone: name in net.backbones; '' = the architecture's.
    extra_layer_padding: 'caffe' or 'same' (both give the same sizes for the presets).
    backbone_sources: one of the backbone's source sets ('reference').

  Returns:
    list of ints, one per source: [38, 19, 10, 5, 3, 1] for ssd300 at 300,
    [64, 32, 16, 8, 4, 2, 1] for ssd512 at 512.

  Raises:
    ValueError: if the image is too small for some layer (the 'VALID' layers need room),
      naming the smallest size that fits.
  """
  arch = get_architecture(architecture)
  image_size = arch.image_size if image_size is None else int(image_size)
  backbone = backbone_name(arch, backbone)
  backbones.get(backbone).check_sources(backbone_sources)  # not 'too small' for a wrong name
  fits = functools.partial(_fits, arch, backbone, extra_layer_padding=extra_layer_padding,
                           backbone_sources=backbone_sources)
  if not fits(image_size=image_size):
    low, high = image_size, max(2 * image_size, 64)
    while not fits(image_size=high):
      low, high = high, 2 * high
      if high > 8192:
        raise ValueError('%s on %s fits no image size up to 8192.' % (arch.name, backbone))
    while high - low > 1:  # smallest size that fits, in (low, high]
      middle = (low + high) // 2
      low, high = (low, middle) if fits(image_size=middle) else (middle, high)
    raise ValueError('image_size %d is too small for %s (backbone %s); use at least %d.'
                     % (image_size, arch.name, backbone, high))
  return list(_probe_sources(arch, backbone, image_size, extra_layer_padding,
                             backbone_sources)[1])


def _extra_layers(net, blocks, separable, activation, data_format, batch_norm, is_training,
                  extra_layer_padding):
  """Builds the extra blocks on the last source; returns their outputs (the `name`_2 layers)."""
  outputs = []
  with tf1.variable_scope('extra_layers'):
    for block in blocks:
      net = layers.conv2d(net, block.depth_1x1, 1, scope=block.name + '_1',
                          data_format=data_format, batch_norm=batch_norm, is_training=is_training,
                          activation=activation)
      padding = _block_padding(block, extra_layer_padding)
      if separable:
        net = layers.depthwise_conv2d(net, block.kernel_size, block.name + '_2_depthwise',
                                      stride=block.stride, padding=padding,
                                      data_format=data_format, activation=activation,
                                      batch_norm=batch_norm, is_training=is_training)
        net = layers.conv2d(net, block.depth, 1, scope=block.name + '_2',
                            data_format=data_format, batch_norm=batch_norm,
                            is_training=is_training, activation=activation)
      else:
        net = layers.conv2d(net, block.depth, block.kernel_size, scope=block.name + '_2',
                            stride=block.stride, padding=padding, data_format=data_format,
                            batch_norm=batch_norm, is_training=is_training,
                            activation=activation)
      outputs.append(net)
  return outputs


def _head(source, depth_per_anchor, num_anchors_here, scope, data_format, separable, activation,
          batch_norm, is_training):
  """3x3 linear conv (or SSDLite's depthwise 3x3 + 1x1), flattened to [batch, cells * anchors,
  depth_per_anchor]."""
  if separable:
    source = layers.depthwise_conv2d(source, 3, scope + '_depthwise', data_format=data_format,
                                     activation=activation, batch_norm=batch_norm,
                                     is_training=is_training)
  net = layers.conv2d(source, num_anchors_here * depth_per_anchor, 1 if separable else 3,
                      scope=scope, data_format=data_format, activation=None)
  if data_format == 'NCHW':
    # Same (y, x, anchor) order in both layouts: move channels last before flattening.
    net = tf.transpose(net, [0, 2, 3, 1])
  height, width = int(net.shape[1]), int(net.shape[2])
  return tf.reshape(net, [-1, height * width * num_anchors_here, depth_per_anchor])


def _heads(sources, anchors_per_location, depth_per_anchor, scope, data_format, **head_options):
  """One head per source; returns [batch, num_anchors, depth_per_anchor] over all sources."""
  with tf1.variable_scope(scope):
    outputs = [_head(source, depth_per_anchor, num_anchors_here, name, data_format,
                     **head_options)
               for (name, source), num_anchors_here in zip(sources.items(),
                                                           anchors_per_location)]
    return tf.concat(outputs, axis=1)


def _check_build_args(arch, backbone, images, num_classes, anchors_per_location, data_format,
                      backbone_sources):
  layers.check_data_format(data_format)
  shape = images.shape
  if shape.rank != 4 or shape[3] != 3 or shape[1] is None or shape[1] != shape[2]:
    raise ValueError('build_ssd needs images float32 [batch, size, size, 3] (NHWC, static square '
                     'size), got shape %s.' % (shape,))
  if num_classes is None or int(num_classes) < 2:
    raise ValueError('num_classes counts the background and must be >= 2, got %r.'
                     % (num_classes,))
  names = source_names(arch, backbone, backbone_sources)
  if anchors_per_location is None or len(anchors_per_location) != len(names):
    raise ValueError('anchors_per_location must give one count per source of %s (%d: %s), got %r; '
                     'take it from the anchor generator of the same preset.'
                     % (arch.name, len(names), ', '.join(names), anchors_per_location))


def build_ssd(images, architecture='ssd300', num_classes=21, anchors_per_location=None,
              data_format='NHWC', width_multiplier=1.0, extra_batch_norm=False, is_training=False,
              model_scope=None, backbone_batch_norm=False, compute_dtype='float32',
              extra_layer_padding='caffe', weight_init='xavier', backbone='',
              stem=backbones.REFERENCE_STEM, backbone_sources=backbones.REFERENCE_SOURCES):
  """Builds the SSD network under `model_scope`.

  Args:
    images: float32 [batch, size, size, 3], NHWC, in the backbone's image convention
      (net.backbones.get(name).convention.normalize); batch may be unknown, size must be static.
    architecture: a name in ARCHITECTURES ('ssd300', 'ssd512', 'ssdlite', ...) or an
      Architecture.
    num_classes: int, number of classes including the background (21 for VOC).
    anchors_per_location: list of ints, anchors per feature-map cell for each source, from the
      anchor generator (reference: ssd300 [4, 6, 6, 6, 4, 4], ssd512 [4, 6, 6, 6, 6, 4, 4]).
    data_format: 'NHWC' or 'NCHW' for the convolutions; images are transposed inside for NCHW.
      Outputs are the same in both, and so are the variables (kernels are HWIO).
    width_multiplier: scales the backbone's channel counts; reference 1.0.
    extra_batch_norm: batch norm in the extra layers (and SSDLite's depthwise head layers);
      not in the reference.
    is_training: Python bool, batch norm mode.
    model_scope: variable scope of the whole model; defaults to the architecture name.
    backbone_batch_norm: batch norm in the VGG backbone (not in the reference; for small
      models trained from scratch). MobileNets always have it.
    compute_dtype: 'float32' (reference) or 'bfloat16': mixed precision, the convolutions run
      in bfloat16 on float32 variables (about 1.8x faster on CPUs with AVX512_BF16 and on
      recent GPUs); L2 norm, batch-norm statistics and the outputs stay float32.
    extra_layer_padding: 'caffe' (reference: each block's own padding, one pixel on every side
      for the strided blocks) or 'same' (TF 'SAME' on the strided blocks; EXTRA_LAYER_PADDINGS).
    weight_init: initializer of every kernel, a key of layers.KERNEL_INITIALIZERS ('xavier',
      Caffe's filler); only fresh variables see it.
    backbone: a name in net.backbones ('vgg16', 'mobilenet_v1', 'mobilenet_v2'); '' = the
      architecture's own.
    stem: one of the backbone's stems ('reference'; VGG16 also 'strided').
    backbone_sources: one of the backbone's source sets ('reference'; MobileNet V1 also
      'stride8').

  Returns:
    A dict:
      'box_offsets': float32 [batch, num_anchors, 4], encoded offsets (ty, tx, th, tw) per anchor.
      'class_logits': float32 [batch, num_anchors, num_classes], unnormalized scores, 0 =
        background.
      'feature_maps': list of source tensors in data_format (conv4_3 after L2 norm).
      'feature_map_sizes': list of ints, side of each source map.
    num_anchors = sum(size^2 * k) over sources, 8732 for ssd300 at 300, 24564 for ssd512 at 512.

  Raises:
    ValueError: on a bad argument, with how to fix it.
  """
  arch = get_architecture(architecture)
  backbone = backbone_name(arch, backbone)
  _check_build_args(arch, backbone, images, num_classes, anchors_per_location, data_format,
                    backbone_sources)
  sizes = feature_map_sizes(arch, int(images.shape[1]), backbone, extra_layer_padding,
                            backbone_sources)
  backbone_def = backbones.get(backbone)
  with tf1.variable_scope(model_scope or arch.name,
                          initializer=layers.kernel_initializer(weight_init)):
    sources = build_feature_maps(
        images, arch, backbone, data_format, width_multiplier, extra_batch_norm, is_training,
        backbone_batch_norm, compute_dtype, extra_layer_padding, stem, backbone_sources)
    head_options = dict(separable=arch.separable, activation=backbone_def.activation,
                        batch_norm=extra_batch_norm, is_training=is_training)
    box_offsets = _heads(sources, anchors_per_location, 4, 'box_heads', data_format,
                         **head_options)
    class_logits = _heads(sources, anchors_per_location, int(num_classes), 'class_heads',
                          data_format, **head_options)
  return {'box_offsets': tf.cast(box_offsets, tf.float32),
          'class_logits': tf.cast(class_logits, tf.float32),
          'feature_maps': list(sources.values()), 'feature_map_sizes': sizes}


def count_parameters(model_scope, variables=None, backbone='vgg16'):
  """Counts trainable parameters of a built model, split by part.

  Args:
    model_scope: the scope given to (or defaulted by) build_ssd, e.g. 'ssd300'.
    variables: variables to count; defaults to the graph's trainable variables.
    backbone: the model's backbone name (its parts: parameter_parts).

  Returns:
    An OrderedDict part -> int ('backbone', then VGG's 'l2norm', then 'extras', 'box_heads',
    'class_heads'), then 'total' -> int.

  Raises:
    ValueError: if a variable under model_scope belongs to none of the parts, or none is found.
  """
  parts = parameter_parts(backbone)
  if variables is None:
    variables = tf1.trainable_variables()
  prefix = model_scope + '/'
  counts = collections.OrderedDict((part, 0) for part, _ in parts)
  for variable in variables:
    if not variable.name.startswith(prefix):
      continue
    relative = variable.name[len(prefix):]
    part = next((p for p, scope in parts if relative.startswith(scope + '/')), None)
    if part is None:
      raise ValueError('Variable %s belongs to no parameter part %s.'
                       % (variable.name, [scope for _, scope in parts]))
    counts[part] += int(np.prod(variable.shape.as_list()))
  counts['total'] = sum(counts.values())
  if counts['total'] == 0:
    raise ValueError('No trainable variables under %r: build the model first.' % (model_scope,))
  return counts
