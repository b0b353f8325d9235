"""The one check of the settings, run by training, evaluation and export before any work.

``validate(ssd_config, training)`` raises ValueError with one sentence naming the flag to
change. Model and detection-output settings are checked for every command (an evaluation of a
hand-edited ssd_config.json fails as early as training would); the optimizer, schedule,
checkpoint and augmentation settings only for training.
"""

from net import kernel_support
from net import layers
from net import model_spec
from net import ssd_net
from net import time_budget
from net import train_ops
from preprocessing import augmentation_ops
from preprocessing import ssd_preprocessing
from utility import box_coder
from utility import checkpoint
from utility import labels
from utility import matcher
from utility import warm_start


def validate(ssd_config, training=True):
  """Raises ValueError with a fix for inconsistent settings.

  Args:
    ssd_config: utility.config.SSDConfig.
    training: also check the train and input sections.
  """
  _check_model(ssd_config.model)
  _check_postprocess(ssd_config.postprocess)
  if training:
    _check_train(ssd_config.train, ssd_config.model)
    ssd_preprocessing.augmentation_configs(ssd_config.input)  # raises naming the flag
    augmentation_ops.resolve(ssd_config.input.extra_augmentations,
                             ssd_config.input.augmentation_options)


def _check_model(model):
  ssd_net.get_architecture(model.architecture)  # raises naming the architectures
  labels.check_category_ids(model.category_ids, model.class_names)
  model_spec.backbone(model).check_stem(model.stem)  # raises naming --backbone or --stem
  model_spec.backbone(model).check_sources(model.backbone_sources)
  if not 0 <= model.neg_threshold <= model.match_threshold <= 1:
    raise ValueError('Need 0 <= --neg_threshold <= --match_threshold <= 1, got %s and %s.'
                     % (model.neg_threshold, model.match_threshold))
  if model.extra_layer_padding not in ssd_net.EXTRA_LAYER_PADDINGS:
    raise ValueError('--extra_layer_padding must be one of %s, got %r.'
                     % (', '.join(ssd_net.EXTRA_LAYER_PADDINGS), model.extra_layer_padding))
  if model.bipartite_matching not in matcher.BIPARTITE_MODES:
    raise ValueError('--bipartite_matching must be one of %s, got %r.'
                     % (', '.join(matcher.BIPARTITE_MODES), model.bipartite_matching))
  matcher.from_config(model)    # raises naming --matcher
  box_coder.from_config(model)  # raises naming --box_coder (and bad --prior_variances later)
  if model.data_format not in ('NHWC', 'NCHW'):
    raise ValueError("--data_format must be NHWC/channels_last or NCHW/channels_first, got %r."
                     % model.data_format)
  if model.compute_dtype not in kernel_support.COMPUTE_DTYPES:
    raise ValueError('--compute_dtype must be one of %s, got %r.'
                     % (', '.join(kernel_support.COMPUTE_DTYPES), model.compute_dtype))
  if model.conv_algorithm not in kernel_support.CONV_ALGORITHMS:
    raise ValueError('--conv_algorithm must be one of %s, got %r.'
                     % (', '.join(kernel_support.CONV_ALGORITHMS), model.conv_algorithm))
  model_spec.anchor_layers(model)  # raises for an architecture / image size / anchor mismatch


def _check_postprocess(post):
  if not 0 <= post.score_threshold < 1:
    raise ValueError('--score_threshold must be in [0, 1), got %s.' % post.score_threshold)
  if not 0 < post.nms_iou_threshold <= 1:
    raise ValueError('--nms_iou_threshold must be in (0, 1], got %s.' % post.nms_iou_threshold)
  for name in ('pre_nms_top_k', 'max_detections_per_class', 'max_detections_per_image'):
    if getattr(post, name) < 1:
      raise ValueError('--%s must be >= 1, got %s.' % (name, getattr(post, name)))


def is_full_model_checkpoint(checkpoint_path, model, backbone):
  """True if checkpoint_path is a TF checkpoint of a whole SSD with this model's scope."""
  path = checkpoint.find_tf_checkpoint(checkpoint_path)
  return bool(path) and warm_start.is_full_model_checkpoint(path, model.scope, backbone.scope)


def _check_gradient_accumulation(train):
  """K >= 1; K > 1 on one replica only (net/model_fn.py also refuses it when the replicas come
  from all visible GPUs or a TF_CONFIG cluster), with --max_number_of_steps (micro-batches) a
  multiple of K so that no partial accumulation is left unapplied at the end."""
  steps = train.gradient_accumulation_steps
  if steps < 1:
    raise ValueError('--gradient_accumulation_steps must be >= 1 (1 = no accumulation), got %d.'
                     % steps)
  if steps == 1:
    return
  if train.cpu_replicas > 1 or train.num_gpus > 1:
    raise ValueError('--gradient_accumulation_steps=%d works on one replica only: drop '
                     '--cpu_replicas/--num_gpus (or set --num_gpus=1), or set '
                     '--gradient_accumulation_steps=1.' % steps)
  if train.max_number_of_steps % steps:
    raise ValueError('--max_number_of_steps counts micro-batches: make it a multiple of '
                     '--gradient_accumulation_steps=%d (got %d).'
                     % (steps, train.max_number_of_steps))


def _check_train(train, model):
  if len(train.lr_decay_factors) != len(train.decay_boundaries) + 1:
    raise ValueError('--lr_decay_factors needs one more value than --decay_boundaries (%d vs '
                     '%d).' % (len(train.lr_decay_factors), len(train.decay_boundaries)))
  if list(train.decay_boundaries) != sorted(train.decay_boundaries):
    raise ValueError('--decay_boundaries must increase, got %s.' % (train.decay_boundaries,))
  if train.batch_size < 1 or train.max_number_of_steps < 1:
    raise ValueError('--batch_size and --max_number_of_steps must be >= 1.')
  if train.learning_rate_decay not in train_ops.LEARNING_RATE_DECAYS:
    raise ValueError('--learning_rate_decay must be one of %s, got %r.'
                     % (', '.join(train_ops.LEARNING_RATE_DECAYS), train.learning_rate_decay))
  time_budget.check(train)
  _check_gradient_accumulation(train)
  if train.min_negatives_per_image < 0:
    raise ValueError('--min_negatives_per_image must be >= 0, got %d.'
                     % train.min_negatives_per_image)
  layers.kernel_initializer(train.weight_init)  # raises naming --weight_init
  backbone = model_spec.backbone(model)
  if not train.checkpoint_path or is_full_model_checkpoint(train.checkpoint_path, model,
                                                           backbone):
    return  # nothing to load, or a whole SSD: any width and batch norm, matched by shape
  if model.width_multiplier not in backbone.pretrained_widths:
    widths = backbone.pretrained_widths
    raise ValueError('--checkpoint_path (ImageNet %s) needs --width_multiplier%s, got %s.'
                     % (backbone.name, '=%s' % widths[0] if len(widths) == 1 else
                        ' in %s' % ', '.join(str(w) for w in widths), model.width_multiplier))
  if model.backbone_batch_norm and not backbone.always_batch_norm:
    raise ValueError('--checkpoint_path (ImageNet %s) has no batch norm: drop '
                     '--backbone_batch_norm.' % backbone.name)
  if model.stem != backbone.stems[0]:
    raise ValueError('--checkpoint_path (ImageNet %s) fits the %s stem only: drop --stem=%s.'
                     % (backbone.name, backbone.stems[0], model.stem))
