import dataclasses
import json

import pytest
from absl import flags

from utility import config
from utility import ssd_flags


def test_save_load_round_trip(tmp_path):
  original = config.SSDConfig(
      model=config.ModelConfig(architecture='ssd512', image_size=512, class_names=('a', 'b')),
      train=config.TrainConfig(decay_boundaries=(10, 20), lr_decay_factors=(1.0, 0.5, 0.25)))
  path = config.save(original, str(tmp_path))
  assert json.load(open(path))['model']['class_names'] == ['a', 'b']
  loaded = config.load(str(tmp_path))
  assert loaded == original
  assert loaded.model.num_classes == 3 and loaded.model.scope == 'ssd512'


def test_unknown_keys_fail_with_their_names():
  with pytest.raises(ValueError, match=r"Unknown setting\(s\) \['learning_rat'\] in section "
                                       r'"train"'):
    config.from_dict({'train': {'learning_rat': 0.1}})
  with pytest.raises(ValueError, match='Unknown config section'):
    config.from_dict({'optim': {}})


def test_load_names_the_missing_file(tmp_path):
  with pytest.raises(FileNotFoundError, match='ssd_config.json not found: --model_dir must be'):
    config.load(str(tmp_path))


def _flags(argv):
  values = flags.FlagValues()
  ssd_flags.define_config_flags(flag_values=values)
  values(['prog'] + argv)
  return values


def test_flags_build_the_reference_config_by_default():
  built = ssd_flags.config_from_flags(_flags([]))
  assert built == config.SSDConfig()


def test_the_reference_flagfile_states_the_defaults():
  # configs/ssd300_voc0712.flags lists every recipe value with its source; each is the default.
  import os
  path = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'configs',
                      'ssd300_voc0712.flags')
  given = [line.strip().split('=')[0].lstrip('-') for line in open(path)
           if line.startswith('--')]
  assert {'extra_layer_padding', 'bipartite_matching', 'hue_max_delta_degrees',
          'crop_min_ious', 'crop_max_ious', 'crop_max_trials', 'crop_min_scale',
          'l2_norm_scale_weight_decay', 'weight_init', 'nouse_difficult'} <= set(given)
  built = ssd_flags.config_from_flags(_flags(['--flagfile=' + path]))
  # Only the run settings (how often to save and log) are the flagfile's own.
  assert (built.train.save_checkpoints_secs, built.train.log_every_n_steps) == (1800, 100)
  assert built == dataclasses.replace(config.SSDConfig(), train=dataclasses.replace(
      config.TrainConfig(), save_checkpoints_secs=1800, log_every_n_steps=100))


def test_flags_set_fields_and_aliases(tmp_path):
  values = _flags(['--train_image_size=512', '--architecture=ssd512',
                   '--data_format=channels_first', '--decay_boundaries=5,7',
                   '--lr_decay_factors=1,0.1,0.01', '--class_names=cat,dog',
                   '--num_preprocessing_threads=3', '--backbone_batch_norm'])
  built = ssd_flags.config_from_flags(values)
  assert built.model.image_size == 512 and built.model.data_format == 'NCHW'
  assert built.model.class_names == ('cat', 'dog') and built.model.backbone_batch_norm
  assert built.train.decay_boundaries == (5, 7)
  assert built.train.lr_decay_factors == (1.0, 0.1, 0.01)
  assert built.input.num_parallel_calls == 3


def test_class_names_come_from_the_converter_summary(tmp_path):
  (tmp_path / 'conversion_summary.json').write_text(json.dumps({'class_names': ['x', 'y', 'z']}))
  built = ssd_flags.config_from_flags(_flags([]), data_dir=str(tmp_path))
  assert built.model.class_names == ('x', 'y', 'z')


def test_override_mode_only_applies_flags_given():
  base = config.SSDConfig(postprocess=config.PostprocessConfig(score_threshold=0.3),
                          model=config.ModelConfig(width_multiplier=0.5))
  built = ssd_flags.config_from_flags(_flags(['--nms_iou_threshold=0.6']), base=base)
  assert built.postprocess.score_threshold == 0.3       # kept from base
  assert built.postprocess.nms_iou_threshold == 0.6     # given
  assert built.model.width_multiplier == 0.5


def test_bad_list_flag_is_named():
  with pytest.raises(ValueError, match='--decay_boundaries=a,b: every item must be a int'):
    ssd_flags.config_from_flags(_flags(['--decay_boundaries=a,b']))


def test_gradient_accumulation_flag_sets_the_train_field():
  assert config.TrainConfig().gradient_accumulation_steps == 1
  built = ssd_flags.config_from_flags(_flags(['--gradient_accumulation_steps=4']))
  assert built.train.gradient_accumulation_steps == 4
  assert built == dataclasses.replace(config.SSDConfig(), train=dataclasses.replace(
      config.TrainConfig(), gradient_accumulation_steps=4))
