"""Settings: one frozen dataclass tree, built from flags, passed down, saved in model_dir.

absl flags are the user's surface: utility/ssd_flags.py defines one flag per field below (the
field's help text is the flag's), so a setting exists in exactly one place. Inside the library
the settings travel as an ``SSDConfig``. Training writes it to ``<model_dir>/ssd_config.json``;
evaluation, export and the demo read it back, so ``--model_dir`` alone describes the model.

Defaults are the reference recipe of docs/RECIPE.md (SSD300-VGG16, VOC07+12); every departure is a
field. Unknown keys or inconsistent values fail at start-up with a message saying which flag to
change.
"""

import dataclasses
import json
import os
from typing import Tuple

from utility import file_io
from utility import labels

CONFIG_FILENAME = 'ssd_config.json'

# Field name -> command-line flag name, where the flag keeps the reference port's name
# (utility/ssd_flags.py defines the flags; messages name them through flag_name).
FLAG_NAMES = {
    'image_size': 'train_image_size',
    'num_parallel_calls': 'num_preprocessing_threads',
}
DATA_FORMAT_ALIASES = {'channels_last': 'NHWC', 'channels_first': 'NCHW',
                       'nhwc': 'NHWC', 'nchw': 'NCHW'}


def flag_name(field_name):
  """The flag of a settings field: 'image_size' -> 'train_image_size', else the field name."""
  return FLAG_NAMES.get(field_name, field_name)


def _setting(default, help_text):
  return dataclasses.field(default=default, metadata={'help': help_text})


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Network, default boxes and target encoding: everything inference needs."""
  architecture: str = _setting(
      'ssd300', 'Extra layers and heads: ssd300, ssd512, ssdlite (separable, MobileNetV2 paper) '
      'or ssd_quick (net.ssd_net.ARCHITECTURES).')
  backbone: str = _setting(
      '', "vgg16, mobilenet_v1 or mobilenet_v2 (net.backbones); '' = the architecture's own "
      '(vgg16; mobilenet_v2 for ssdlite).')
  image_size: int = _setting(300, 'Square model input side in pixels.')
  class_names: Tuple[str, ...] = _setting(
      labels.VOC_CLASSES, 'Object class names in label order (label 0 is the background).')
  category_ids: Tuple[int, ...] = _setting(
      (), 'Dataset category id of each label, in label order, used in COCO results files '
      "(empty: the converter's record of them in <data_dir>/conversion_summary.json, COCO's "
      'ids for the 80 COCO classes, else the labels 1..N).')
  width_multiplier: float = _setting(1.0, 'Backbone channels x this (reference 1.0).')
  backbone_batch_norm: bool = _setting(
      False, 'Batch norm in the VGG backbone (quick from-scratch models; reference off). '
      'MobileNets always have it.')
  stem: str = _setting(
      'reference', "The backbone's first layers: reference (its paper's, what pretrained "
      'weights fit) or, for VGG16, strided: one 3x3 stride-2 convolution in place of conv1_1, '
      'conv1_2 and pool1 (quick from-scratch models; net/vgg.py).')
  backbone_sources: str = _setting(
      'reference', 'Which backbone layers feed the heads: reference (its SSD paper\'s or the OD '
      "API's) or, for MobileNet V1, stride8: conv_pw_5 (stride 8) before conv_pw_11 and "
      'conv_pw_13, for small objects (net/mobilenet_v1.py).')
  extra_batch_norm: bool = _setting(
      False, "Batch norm in the extra layers and SSDLite's depthwise head layers (reference off).")
  data_format: str = _setting('NHWC', 'NHWC (CPU) or NCHW (faster on GPU).')
  compute_dtype: str = _setting(
      'float32', 'float32 (reference), bfloat16 (mixed precision: convolutions in bfloat16 on '
      'float32 variables) or auto: bfloat16 where the hardware computes it natively (CPU with '
      'AVX512_BF16/AMX and oneDNN, GPU of compute capability >= 8.0), else float32.')
  conv_algorithm: str = _setting(
      'auto', 'How training and inference graphs compute the 3x3 stride-1 convolutions of 64+ '
      "to 128+ channels: direct (tf.nn.conv2d), winograd (F(4x4, 3x3), net/winograd.py: 4x "
      'fewer multiplies, outputs within 1e-4 and gradients within 2e-4 of direct, relative to '
      'their range; float32 NHWC only) or '
      'auto: winograd where measured faster (CPU with oneDNN on, float32, NHWC), else direct.')
  model_scope: str = _setting('', "Variable scope of the model; '' = the architecture name.")
  # Caffe AddExtraLayers: conv8_2, conv9_2 (and SSD512's conv10_2, conv11_2) 3x3 stride 2 pad 1.
  extra_layer_padding: str = _setting(
      'caffe', "caffe: the strided extra layers pad one pixel on every side (Caffe's pad 1); "
      "same: TF 'SAME' (bottom/right only on even inputs), what model_dirs trained before "
      'this setting existed used.')
  clip_anchors: bool = _setting(False, 'Clip default boxes to the image (Caffe SSD300: off).')
  anchor_preset: str = _setting(
      '', "Default-box preset of utility/anchors.PRESETS: ssd300, ssd512 (Caffe VOC priors), "
      "ssd300_coco, ssd512_coco (the COCO priors); '' = the architecture's own.")
  anchor_min_scale: float = _setting(
      0.0, '> 0: default-box scales spread linearly from this (fraction of the image) instead '
      'of the preset.')
  anchor_max_scale: float = _setting(0.0, 'Largest default-box scale with anchor_min_scale.')
  match_threshold: float = _setting(0.5, 'IoU >= this makes an anchor positive.')
  neg_threshold: float = _setting(
      0.5, 'IoU < this makes an anchor negative; in between it is ignored.')
  # Caffe MatchBBox (bbox_util.cpp); docs/RECIPE.md "Matching and encoding".
  bipartite_matching: str = _setting(
      'greedy', "greedy (Caffe): the largest remaining IoU pair first, so a GT whose best "
      "default box went to another GT takes its next best; per_gt: each GT claims its own best "
      "box and a GT that loses it gets none (torchvision, TF OD API; this project before).")
  prior_variances: Tuple[float, ...] = _setting(
      (0.1, 0.1, 0.2, 0.2), 'Box-coder variances for (cy, cx, h, w).')
  matcher: str = _setting(
      'ssd', 'Anchor-to-box matcher, a key of utility.matcher.MATCHERS (ssd: bipartite step, '
      'then --match_threshold / --neg_threshold per prediction).')
  box_coder: str = _setting(
      'center_size', 'Box coder, a key of utility.box_coder.CODERS (center_size: SSD offsets '
      'scaled by --prior_variances).')

  @property
  def num_classes(self):
    return len(self.class_names) + 1

  @property
  def scope(self):
    return self.model_scope or self.architecture


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Loss, optimizer, schedule and run settings (docs/RECIPE.md: Loss, Training schedule)."""
  batch_size: int = _setting(32, 'Global batch size, split evenly across replicas.')
  negative_ratio: float = _setting(3.0, 'Hard negatives kept per positive, per image.')
  min_negatives_per_image: int = _setting(
      0, 'Hard negatives mined in every image however few positives it has (0 = Caffe '
      'MultiBoxLoss: an image without positives mines none; the TF Object Detection API SSD '
      'configs use 3). > 0 also lets images without objects into training, so they teach '
      'background.')
  loc_weight: float = _setting(1.0, 'Weight alpha of the localization loss.')
  optimizer: str = _setting('momentum', 'momentum, adam or sgd.')
  learning_rate: float = _setting(1e-3, 'Base learning rate after warm-up.')
  momentum: float = _setting(0.9, 'Momentum of the momentum optimizer.')
  adam_beta1: float = _setting(0.9, 'Adam beta1.')
  adam_beta2: float = _setting(0.999, 'Adam beta2.')
  warmup_steps: int = _setting(500, 'Steps at warmup_learning_rate before learning_rate.')
  warmup_learning_rate: float = _setting(1e-4, 'Learning rate during warm-up.')
  decay_boundaries: Tuple[int, ...] = _setting(
      (80000, 100000), 'Steps where the learning rate changes to the next factor.')
  lr_decay_factors: Tuple[float, ...] = _setting(
      (1.0, 0.1, 0.01), 'learning_rate multipliers, one more than decay_boundaries.')
  learning_rate_decay: str = _setting(
      'piecewise', 'After warm-up: piecewise (Caffe multistep, the reference: --decay_boundaries '
      'and --lr_decay_factors) or cosine (from --learning_rate to --end_learning_rate at '
      '--max_number_of_steps; not in the reference).')
  end_learning_rate: float = _setting(0.0, 'Floor of the learning rate.')
  max_number_of_steps: int = _setting(120000, 'Training stops at this global step.')
  # Not in the reference: the quick recipe (configs/quick.flags) trains for a time, so that it
  # ends within minutes on CPUs ten times apart in speed (net/time_budget.py).
  train_time_budget_minutes: float = _setting(
      0.0, '> 0: train for about this many minutes of wall time: the speed measured over the '
      'warm-up decides the step count, and --max_number_of_steps with --decay_boundaries give '
      'only the shape of the schedule, scaled to that count (saved in <model_dir>/'
      'time_budget.json, which a resumed run follows). 0 = train to --max_number_of_steps.')
  # Caffe's solver has iter_size, which averages gradients each normalised by its own
  # micro-batch's positives; this normalises once by the positives of all K micro-batches, so
  # an optimizer step equals one step on the K-times batch exactly (batch norm aside). The
  # global step, --max_number_of_steps and the save/log intervals count micro-batches; the
  # learning-rate schedule (--warmup_steps, --decay_boundaries) counts optimizer steps.
  gradient_accumulation_steps: int = _setting(
      1, 'Micro-batches of --batch_size images per optimizer step (1 = Caffe\'s solver without '
      'iter_size); the update equals one step on a batch of K x --batch_size. The global step '
      'and --max_number_of_steps count micro-batches, the learning-rate schedule optimizer '
      'steps. One replica only.')
  weight_decay: float = _setting(5e-4, 'L2 weight decay on kernels.')
  bias_weight_decay: bool = _setting(
      False, 'Decay biases too (the TF port did; Caffe does not).')
  l2_norm_scale_weight_decay: bool = _setting(
      True, "Decay conv4_3's L2-norm scale too (Caffe: its Normalize layer has decay_mult 1).")
  weight_init: str = _setting(
      'xavier', "Kernels of layers not restored from a checkpoint: 'xavier' (Caffe's filler, "
      "U(+-sqrt(3 / fan_in))) or 'glorot' (U(+-sqrt(6 / (fan_in + fan_out))), Keras' default).")
  bias_lr_multiplier: float = _setting(
      2.0, 'Gradient multiplier of biases (Caffe lr_mult 2); 1 disables.')
  gradient_clip_norm: float = _setting(0.0, '> 0: clip gradients to this global norm.')
  checkpoint_path: str = _setting(
      '', 'ImageNet VGG16 (slim vgg_16.ckpt or a reduced copy) for a fresh start.')
  checkpoint_model_scope: str = _setting('vgg_16', 'Scope of the backbone in checkpoint_path.')
  checkpoint_exclude_scopes: Tuple[str, ...] = _setting(
      (), 'Scopes below the model scope not restored from checkpoint_path.')
  log_every_n_steps: int = _setting(10, 'Console log interval in steps.')
  save_summary_steps: int = _setting(500, 'TensorBoard summary interval in steps.')
  save_checkpoints_steps: int = _setting(0, '> 0: checkpoint every this many steps.')
  save_checkpoints_secs: int = _setting(
      600, 'Checkpoint interval in seconds when save_checkpoints_steps is 0.')
  keep_checkpoint_max: int = _setting(5, 'Checkpoints kept in model_dir.')
  tf_random_seed: int = _setting(0, '> 0: seed graph-level randomness and the input pipeline.')
  num_gpus: int = _setting(-1, 'GPUs to replicate over (MirroredStrategy); -1 = all visible.')
  cpu_replicas: int = _setting(
      0, '> 1: replicate over this many CPU devices (MirroredStrategy without GPUs).')


@dataclasses.dataclass(frozen=True)
class InputConfig:
  """Input pipeline and augmentation."""
  num_readers: int = _setting(-1, 'TFRecord files read in parallel; -1 = AUTOTUNE.')
  num_parallel_calls: int = _setting(-1, 'Parallel preprocessing calls; -1 = AUTOTUNE.')
  shuffle_buffer: int = _setting(2048, 'Records in the shuffle buffer.')
  prefetch_batches: int = _setting(-1, 'Batches prefetched; -1 = AUTOTUNE.')
  use_difficult: bool = _setting(False, 'Train on difficult objects too.')
  max_boxes_per_image: int = _setting(100, 'Ground-truth rows per image in a batch.')
  channel_swap: bool = _setting(False, 'Random channel permutation (Caffe option).')
  expand_probability: float = _setting(0.5, 'Probability of the zoom-out expansion.')
  max_expand_ratio: float = _setting(4.0, 'Largest expansion canvas side / image side.')
  photometric_probability: float = _setting(
      0.5, 'Probability of each of brightness, contrast, saturation and hue distortion.')
  # ssd_pascal.py distort_param: brightness_delta 32, contrast and saturation 0.5 to 1.5.
  brightness_max_delta: float = _setting(
      32.0, 'Largest brightness shift on the 0-255 scale (Caffe brightness_delta 32).')
  contrast_range: Tuple[float, ...] = _setting(
      (0.5, 1.5), 'Contrast factor range lower,upper (Caffe contrast_lower/upper).')
  saturation_range: Tuple[float, ...] = _setting(
      (0.5, 1.5), 'Saturation factor range lower,upper (Caffe saturation_lower/upper).')
  flip_probability: float = _setting(0.5, 'Probability of the horizontal flip (Caffe mirror).')
  # Caffe's hue_delta 18 is in OpenCV's 8-bit hue units (a 180 circle): 36 degrees.
  hue_max_delta_degrees: float = _setting(
      36.0, "Largest hue rotation in degrees (Caffe's hue_delta 18 of 180; 0 = none).")
  # The crop samplers: the authors' ssd_pascal.py batch_sampler and sampler.cpp.
  crop_min_ious: Tuple[float, ...] = _setting(
      (0.1, 0.3, 0.5, 0.7, 0.9, 0.0),
      'Crop samplers: the min IoU of each (ssd_pascal.py min_jaccard_overlap; 0 = none).')
  crop_max_ious: Tuple[float, ...] = _setting(
      (1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
      'Crop samplers: the max IoU of each, one per --crop_min_ious (max_jaccard_overlap).')
  crop_whole_image: bool = _setting(
      True, 'The whole image is one of the samples the crop is chosen from (Caffe sampler 1).')
  crop_max_trials: int = _setting(50, 'Patches each crop sampler tries (Caffe max_trials).')
  crop_min_scale: float = _setting(0.3, 'Smallest crop scale s (Caffe min_scale).')
  crop_max_scale: float = _setting(1.0, 'Largest crop scale s (Caffe max_scale).')
  crop_min_aspect_ratio: float = _setting(
      0.5, 'Smallest crop aspect ratio width/height, at least s^2 (Caffe min_aspect_ratio).')
  crop_max_aspect_ratio: float = _setting(
      2.0, 'Largest crop aspect ratio width/height, at most 1/s^2 (Caffe max_aspect_ratio).')
  extra_augmentations: Tuple[str, ...] = _setting(
      (), 'Augmentation ops run before the recipe\'s, in order (preprocessing/'
      'augmentation_ops.py: grayscale; none in the reference).')
  augmentation_options: Tuple[str, ...] = _setting(
      (), 'Settings of the extra ops as <op>.<setting>=<value>, e.g. grayscale.probability=0.2.')


@dataclasses.dataclass(frozen=True)
class PostprocessConfig:
  """Detection output (docs/RECIPE.md: Detection output and evaluation)."""
  score_threshold: float = _setting(0.01, 'Detections need a class score above this.')
  pre_nms_top_k: int = _setting(400, 'Candidates per class entering NMS.')
  nms_iou_threshold: float = _setting(0.45, 'IoU above which NMS suppresses.')
  max_detections_per_class: int = _setting(200, 'Detections kept per class after NMS.')
  max_detections_per_image: int = _setting(200, 'Detections kept per image.')
  eval_metric: str = _setting(
      'voc07', 'Evaluator of train_and_eval and eval_ssd.py, a key of '
      'net.detection_eval.EVALUATORS: voc07 (11-point AP, the paper), area (VOC2010+ AP) or '
      'coco (COCOeval, pycocotools).')


@dataclasses.dataclass(frozen=True)
class SSDConfig:
  model: ModelConfig = ModelConfig()
  train: TrainConfig = TrainConfig()
  input: InputConfig = InputConfig()
  postprocess: PostprocessConfig = PostprocessConfig()


SECTIONS = {'model': ModelConfig, 'train': TrainConfig, 'input': InputConfig,
            'postprocess': PostprocessConfig}

# Settings added after model_dirs were written without them: the value such a model_dir was
# trained with. A saved ssd_config.json that lacks one of these keys gets this value, not the
# new default, so an old model keeps its meaning (and resuming it with the new default is
# refused by net/training.check_resumable, naming the setting).
LEGACY_VALUES = {
    'model': {'bipartite_matching': 'per_gt', 'extra_layer_padding': 'same'},
}


def to_dict(config):
  return dataclasses.asdict(config)


def from_dict(values, missing=None):
  """Builds an SSDConfig from a nested dict; unknown sections or keys raise ValueError.

  Args:
    values: {section: {field: value}}.
    missing: optional {section: {field: value}} used for absent fields instead of the
      defaults (LEGACY_VALUES when reading a saved model_dir).
  """
  unknown = set(values) - set(SECTIONS)
  if unknown:
    raise ValueError('Unknown config section(s) %s; expected %s.'
                     % (sorted(unknown), sorted(SECTIONS)))
  sections = {}
  for name, cls in SECTIONS.items():
    fields = {f.name for f in dataclasses.fields(cls)}
    given = values.get(name, {})
    bad = set(given) - fields
    if bad:
      raise ValueError('Unknown setting(s) %s in section "%s".' % (sorted(bad), name))
    fill = {k: v for k, v in (missing or {}).get(name, {}).items() if k not in given}
    given = dict(fill, **given)
    sections[name] = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in given.items()})
  return SSDConfig(**sections)


def save(config, model_dir):
  """Writes the resolved settings to <model_dir>/ssd_config.json atomically."""
  path = os.path.join(model_dir, CONFIG_FILENAME)
  file_io.atomic_write(path, json.dumps(to_dict(config), indent=2, sort_keys=True) + '\n', 'w')
  return path


def load(model_dir):
  """Reads <model_dir>/ssd_config.json.

  Raises:
    FileNotFoundError: naming the file and saying that train_ssd.py writes it.
  """
  path = os.path.join(model_dir, CONFIG_FILENAME)
  if not os.path.isfile(path):
    raise FileNotFoundError(
        '%s not found: --model_dir must be a directory written by train_ssd.py.' % path)
  with open(path, encoding='utf-8') as f:
    return from_dict(json.load(f), missing=LEGACY_VALUES)


def override_model(ssd_config, **changes):
  """A copy of ssd_config with model fields replaced (e.g. data_format for this machine)."""
  if 'data_format' in changes:
    changes['data_format'] = DATA_FORMAT_ALIASES.get(changes['data_format'].lower(),
                                                     changes['data_format'])
  return dataclasses.replace(ssd_config, model=dataclasses.replace(ssd_config.model, **changes))
