"""Ties a ModelConfig to its network and its default boxes.

The network (net/ssd_net.py) and the anchor generator (utility/anchors.py) are independent
pieces; this module is the one place that makes them agree: the anchors per location of each
source and the feature-map sizes of the network at the configured input size.

Default boxes come from the architecture's preset (the exact Caffe numbers for ssd300/ssd512)
unless the config gives ``anchor_min_scale``/``anchor_max_scale``, in which case they are spread
linearly over the network's feature maps (paper eq. 4), which is what a custom input size or a
small quick model needs.
"""

from net import backbones
from net import layers
from net import ssd_net
from utility import anchors as anchor_lib
from utility import box_coder
from utility import config as config_lib
from utility import labels
from utility import model_inputs as model_inputs_lib
from utility import target_assigner


def backbone(model_config):
  """The net.backbones.Backbone the config runs (--backbone, or the architecture's own)."""
  return backbones.get(ssd_net.backbone_name(model_config.architecture, model_config.backbone))


def image_convention(model_config):
  """utility.image_convention.ImageConvention of the model's input (its backbone's)."""
  return backbone(model_config).convention


def plain_full_width(model_config):
  """True for a network without batch norm anywhere at full width (the reference VGG16
  SSD300/SSD512)."""
  batch_norm = (model_config.backbone_batch_norm or model_config.extra_batch_norm
                or backbone(model_config).always_batch_norm)
  return not batch_norm and model_config.width_multiplier >= 1.0


def default_kernels_train_faster(model_config):
  """True where TensorFlow's default CPU kernels train the network faster than oneDNN on an
  AVX2 CPU (utility/onednn.py): the plain full-width network with --conv_algorithm=direct. With
  Winograd (auto, which oneDNN makes Winograd there, or winograd) oneDNN is the faster choice."""
  return plain_full_width(model_config) and model_config.conv_algorithm == 'direct'


def anchor_layers(model_config):
  """Anchor layers (utility.anchors.AnchorLayer tuple) for a ModelConfig.

  Raises:
    ValueError: if the preset does not fit the network's feature maps at this image size.
  """
  sizes = ssd_net.feature_map_sizes(model_config.architecture, model_config.image_size,
                                    model_config.backbone, model_config.extra_layer_padding,
                                    model_config.backbone_sources)
  if model_config.anchor_min_scale > 0:
    return anchor_lib.scaled_layers(sizes, model_config.image_size,
                                    min_scale=model_config.anchor_min_scale,
                                    max_scale=model_config.anchor_max_scale,
                                    aspect_ratios=_preset_ratios(model_config, len(sizes)))
  preset_name = model_config.anchor_preset or model_config.architecture
  preset = anchor_lib.PRESETS.get(preset_name)
  if preset is None and model_config.anchor_preset:
    raise ValueError('--anchor_preset=%s is not a preset: use one of %s.'
                     % (preset_name, ', '.join(sorted(anchor_lib.PRESETS))))
  if preset is None:
    raise ValueError('Architecture %r has no anchor preset: set --anchor_preset, or '
                     '--anchor_min_scale and --anchor_max_scale.' % model_config.architecture)
  preset_size, layers = preset
  preset_sizes = [layer.feature_size for layer in layers]
  if preset_size != model_config.image_size or preset_sizes != sizes:
    raise ValueError('The %s anchor preset is for %dx%d inputs (feature maps %s), but '
                     '--train_image_size=%d gives %s: use %d or set --anchor_min_scale and '
                     '--anchor_max_scale.' % (preset_name, preset_size, preset_size,
                                              preset_sizes, model_config.image_size, sizes,
                                              preset_size))
  return layers


def _preset_ratios(model_config, num_layers):
  """Aspect ratios per layer: the preset's when it has as many layers, else {2, 3} inside and
  {2} on the first and the last two layers (the SSD300 pattern)."""
  preset = anchor_lib.PRESETS.get(model_config.architecture)
  if preset is not None and len(preset[1]) == num_layers:
    return tuple(layer.aspect_ratios for layer in preset[1])
  return tuple((2.0,) if k == 0 or k >= num_layers - 2 else (2.0, 3.0)
               for k in range(num_layers))


def anchors_per_location(model_config):
  """List of ints, anchors per feature-map cell for each source."""
  return anchor_lib.num_anchors_per_location(anchor_layers(model_config))


def num_anchors(model_config):
  """Total number of default boxes (8732 for the reference SSD300)."""
  return anchor_lib.num_anchors(anchor_layers(model_config))


def generate_anchors(model_config):
  """float32 [num_anchors, 4] normalized [ymin, xmin, ymax, xmax], in the heads' order."""
  return anchor_lib.generate_anchors(anchor_layers(model_config), model_config.image_size,
                                     clip=model_config.clip_anchors)


def build_network(images, model_config, is_training, weight_init='xavier'):
  """Builds the SSD network for a ModelConfig.

  Args:
    images: float32 [batch, image_size, image_size, 3] in image_convention(model_config).
    model_config: utility.config.ModelConfig.
    is_training: Python bool (batch norm mode).
    weight_init: initializer of fresh kernels (TrainConfig.weight_init).

  Returns:
    The dict of ssd_net.build_ssd: 'box_offsets' [batch, num_anchors, 4], 'class_logits'
    [batch, num_anchors, num_classes], 'feature_maps', 'feature_map_sizes'.

  Raises:
    ValueError: if compute_dtype is still 'auto' (the caller resolves it for the machine).
  """
  if model_config.compute_dtype == 'auto':
    raise ValueError("compute_dtype 'auto' must be resolved for this machine before the graph "
                     "is built: call net.kernel_support.resolve_model_config first.")
  with layers.convolution_algorithm(convolution_algorithm(model_config),
                                    cache_kernels=not is_training):
    return ssd_net.build_ssd(
        images, architecture=model_config.architecture, num_classes=model_config.num_classes,
        anchors_per_location=anchors_per_location(model_config),
        data_format=model_config.data_format, width_multiplier=model_config.width_multiplier,
        extra_batch_norm=model_config.extra_batch_norm, is_training=is_training,
        model_scope=model_config.scope, backbone_batch_norm=model_config.backbone_batch_norm,
        compute_dtype=model_config.compute_dtype,
        extra_layer_padding=model_config.extra_layer_padding, weight_init=weight_init,
        backbone=model_config.backbone, stem=model_config.stem,
        backbone_sources=model_config.backbone_sources)


def convolution_algorithm(model_config):
  """How the graph's convolutions are computed (net/layers.py), in training and inference
  graphs alike: the resolved conv_algorithm; an unresolved 'auto' computes direct ('auto' is
  decided per machine by net/kernel_support.choose_conv_algorithm)."""
  if model_config.conv_algorithm == 'auto':
    return 'direct'
  return model_config.conv_algorithm


def coder(model_config):
  """The box coder of the settings (--box_coder): training targets and detections share it."""
  return box_coder.from_config(model_config)


def model_inputs(model_config):
  """utility.model_inputs.ModelInputs for the input pipeline: size, the backbone's image
  convention, the default boxes (numpy) and the target assigner of the settings."""
  return model_inputs_lib.ModelInputs(
      image_size=model_config.image_size, convention=image_convention(model_config),
      anchors=anchor_lib.anchors_numpy(anchor_layers(model_config), model_config.image_size,
                                       clip=model_config.clip_anchors),
      assigner=target_assigner.from_config(model_config))


def category_ids(model_config):
  """The dataset category id of each label (--category_ids; '' = labels.default_category_ids)."""
  return (tuple(model_config.category_ids)
          or labels.default_category_ids(model_config.class_names))


# Architectures whose preset default boxes fit an input size; other sizes use ssd_quick with
# default boxes spread linearly (paper eq. 4). For tools that run the input pipeline without a
# trained model (visualize_augmentation.py, bench/input_pipeline.py): the boxes only shape the
# target encoding there.
_PRESET_ARCHITECTURES = {300: 'ssd300', 512: 'ssd512'}
_LINEAR_ANCHOR_SCALES = (0.1, 0.9)


def config_for_image_size(image_size, class_names):
  """Reference SSDConfig at a square input size, for a run without a trained model: ssd300 /
  ssd512 with their preset boxes at 300 / 512, else ssd_quick with boxes spread linearly."""
  architecture = _PRESET_ARCHITECTURES.get(image_size)
  if architecture:
    model = config_lib.ModelConfig(architecture=architecture, image_size=image_size,
                                   class_names=tuple(class_names))
  else:
    model = config_lib.ModelConfig(
        architecture='ssd_quick', image_size=image_size, class_names=tuple(class_names),
        anchor_min_scale=_LINEAR_ANCHOR_SCALES[0], anchor_max_scale=_LINEAR_ANCHOR_SCALES[1])
  num_anchors(model)  # fails early, naming the smallest usable size
  return config_lib.SSDConfig(model=model)
