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


def _setting(default, help_text):
  return dataclasses.field(default=default, metadata={'help': help_text})


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Network, default boxes and target encoding: everything inference needs."""
  architecture: str = _setting('ssd300', 'Network: a key of net.ssd_net.ARCHITECTURES.')
  image_size: int = _setting(300, 'Square model input side in pixels.')
  class_names: Tuple[str, ...] = _setting(
      labels.VOC_CLASSES, 'Object class names in label order (label 0 is the background).')
  width_multiplier: float = _setting(1.0, 'Backbone channels x this (reference 1.0).')
  backbone_batch_norm: bool = _setting(
      False, 'Batch norm in the VGG backbone (quick from-scratch models; reference off).')
  extra_batch_norm: bool = _setting(False, 'Batch norm in the extra layers (reference off).')
  data_format: str = _setting('NHWC', 'NHWC (CPU) or NCHW (faster on GPU).')
  compute_dtype: str = _setting(
      'float32', 'float32 (reference), bfloat16 (mixed precision: convolutions in bfloat16 on '
      'float32 variables) or auto: bfloat16 where the hardware computes it natively (CPU with '
      'AVX512_BF16/AMX and oneDNN, GPU of compute capability >= 8.0), else float32.')
  model_scope: str = _setting('', "Variable scope of the model; '' = the architecture name.")
  clip_anchors: bool = _setting(False, 'Clip default boxes to the image (Caffe SSD300: off).')
  anchor_min_scale: float = _setting(
      0.0, '> 0: default-box scales spread linearly from this (fraction of the image) instead '
      'of the preset.')
  anchor_max_scale: float = _setting(0.0, 'Largest default-box scale with anchor_min_scale.')
  match_threshold: float = _setting(0.5, 'IoU >= this makes an anchor positive.')
  neg_threshold: float = _setting(
      0.5, 'IoU < this makes an anchor negative; in between it is ignored.')
  prior_variances: Tuple[float, ...] = _setting(
      (0.1, 0.1, 0.2, 0.2), 'Box-coder variances for (cy, cx, h, w).')

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
  end_learning_rate: float = _setting(0.0, 'Floor of the learning rate.')
  max_number_of_steps: int = _setting(120000, 'Training stops at this global step.')
  weight_decay: float = _setting(5e-4, 'L2 weight decay on kernels.')
  bias_weight_decay: bool = _setting(
      False, 'Decay biases too (the TF port did; Caffe does not).')
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
  hue_max_delta_degrees: float = _setting(18.0, 'Largest hue rotation in degrees (0 = none).')


@dataclasses.dataclass(frozen=True)
class PostprocessConfig:
  """Detection output (docs/RECIPE.md: Detection output and evaluation)."""
  score_threshold: float = _setting(0.01, 'Detections need a class score above this.')
  pre_nms_top_k: int = _setting(400, 'Candidates per class entering NMS.')
  nms_iou_threshold: float = _setting(0.45, 'IoU above which NMS suppresses.')
  max_detections_per_class: int = _setting(200, 'Detections kept per class after NMS.')
  max_detections_per_image: int = _setting(200, 'Detections kept per image.')


@dataclasses.dataclass(frozen=True)
class SSDConfig:
  model: ModelConfig = ModelConfig()
  train: TrainConfig = TrainConfig()
  input: InputConfig = InputConfig()
  postprocess: PostprocessConfig = PostprocessConfig()


SECTIONS = {'model': ModelConfig, 'train': TrainConfig, 'input': InputConfig,
            'postprocess': PostprocessConfig}


def to_dict(config):
  return dataclasses.asdict(config)


def from_dict(values):
  """Builds an SSDConfig from a nested dict; unknown sections or keys raise ValueError."""
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
    return from_dict(json.load(f))
