"""Fine-tuning from a full SSD checkpoint: every name-and-shape match restored, the class heads
of another class count skipped, and a report that names each outcome."""

import dataclasses
import logging

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_CLASSES, tiny_config, train_tiny
from utility import checkpoint
from utility import restore_report
from utility import warm_start


def _config(class_names, **train):
  config = tiny_config(max_number_of_steps=1, save_checkpoints_steps=1, **train)
  return dataclasses.replace(config, model=dataclasses.replace(config.model,
                                                               class_names=class_names))


def test_fine_tuning_restores_matching_tensors_and_reports_the_rest(tiny_records, tmp_path,
                                                                    caplog):
  source_dir, target_dir = str(tmp_path / 'source'), str(tmp_path / 'target')
  train_tiny(_config(TINY_CLASSES + ('kite', 'lamp')), tiny_records['records'], source_dir)
  source = tf.train.load_checkpoint(tf.train.latest_checkpoint(source_dir))
  with caplog.at_level(logging.INFO):
    # Learning rate 0: after one step every restored weight still equals the source's.
    train_tiny(_config(TINY_CLASSES, learning_rate=0.0, checkpoint_path=source_dir),
               tiny_records['records'], target_dir)
  target = tf.train.load_checkpoint(tf.train.latest_checkpoint(target_dir))
  source_shapes = source.get_variable_to_shape_map()
  target_shapes = target.get_variable_to_shape_map()
  compared, differing_shapes = 0, []
  for name, shape in target_shapes.items():
    if (name not in source_shapes or restore_report.is_training_state(name)
        or name.endswith(('moving_mean', 'moving_variance'))):
      continue
    if source_shapes[name] != shape:
      differing_shapes.append(name)
      continue
    np.testing.assert_array_equal(target.get_tensor(name), source.get_tensor(name), err_msg=name)
    compared += 1
  # 7 + 1 classes against 5 + 1: only the class heads differ.
  assert differing_shapes and all('cls' in name or 'class' in name for name in differing_shapes)
  assert compared > 2 * len(differing_shapes)
  report = [r.getMessage() for r in caplog.records if r.getMessage().startswith('Warm start')]
  assert len(report) == 1
  assert ('%d variables restored, %d skipped (shape mismatch), 0 missing (freshly initialised), '
          '0 checkpoint tensors unused.' % (compared, len(differing_shapes))) in report[0]
  skipped_line = [r.getMessage() for r in caplog.records
                  if r.getMessage().startswith('  skipped: ')]
  assert skipped_line and all(name in skipped_line[0] for name in differing_shapes)


def test_a_checkpoint_of_another_model_scope_fails_with_a_sentence(tiny_records, tmp_path):
  source_dir = str(tmp_path / 'source')
  train_tiny(_config(TINY_CLASSES), tiny_records['records'], source_dir)
  path = tf.train.latest_checkpoint(source_dir)
  assert warm_start.is_full_model_checkpoint(path, 'ssd_quick', 'vgg_16')
  assert not warm_start.is_full_model_checkpoint(path, 'other_scope', 'vgg_16')
  with tf.Graph().as_default():
    variable = tf.compat.v1.get_variable('other/vgg_16/conv1/weights', [3, 3, 3, 4])
    with pytest.raises(checkpoint.CheckpointError,
                       match=r'None of the backbone variables \(other/vgg_16/\*\) was restored '
                             r'from --checkpoint_path=.*0 variables restored, 0 skipped \(shape '
                             r'mismatch\), 1 missing'):
      warm_start.plan_full_restore(path, [variable], 'other/vgg_16/')
