"""train_ssd.py end to end: multi-worker, kill -9 and resume, train_and_eval, bad settings."""

import dataclasses
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from net import training
from tests.conftest import tiny_config, train_tiny
from utility import progress

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_FLAGS = ['--architecture=ssd_quick', '--train_image_size=160', '--width_multiplier=0.0625',
              '--anchor_min_scale=0.1', '--anchor_max_scale=0.9', '--batch_size=4',
              '--optimizer=adam', '--warmup_steps=0', '--decay_boundaries=',
              '--lr_decay_factors=1', '--log_every_n_steps=1', '--shuffle_buffer=16']


def _train_command(records, model_dir, *extra):
  return [sys.executable, os.path.join(REPO, 'train_ssd.py'), '--data_dir=' + records,
          '--model_dir=' + model_dir] + TINY_FLAGS + list(extra)


def _env(**extra):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO)
  env.pop('TF_CONFIG', None)
  env.update(extra)
  return env


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(('localhost', 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _checkpoint_step(model_dir):
  path = tf.train.latest_checkpoint(model_dir)
  return None if path is None else int(path.rsplit('-', 1)[1])


def test_two_worker_processes_train_to_completion_and_agree(tiny_records, tmp_path, kernel_path):
  model_dir = str(tmp_path / 'model')
  cluster = {'worker': ['localhost:%d' % port for port in _free_ports(2)]}
  workers = []
  for index in range(2):
    tf_config = json.dumps({'cluster': cluster, 'task': {'type': 'worker', 'index': index}})
    log = open(str(tmp_path / ('worker%d.log' % index)), 'w')
    workers.append((subprocess.Popen(
        _train_command(tiny_records['records'], model_dir, '--max_number_of_steps=3',
                       '--save_checkpoints_steps=1'),
        env=_env(TF_CONFIG=tf_config), stdout=log, stderr=subprocess.STDOUT), log))
  for process, log in workers:
    assert process.wait(timeout=600) == 0, open(log.name).read()[-3000:]
    log.close()
  logs = [open(str(tmp_path / ('worker%d.log' % i))).read() for i in range(2)]
  for log in logs:
    assert 'Training with CollectiveAllReduceStrategyV1 over 2 replicas.' in log
    assert 'Training reached step 3' in log
  assert _checkpoint_step(model_dir) == 3                              # the chief's checkpoints
  assert _checkpoint_step(os.path.join(model_dir, 'tmp_worker_1')) == 3  # worker 1 agrees


def test_killed_run_resumes_from_its_last_checkpoint(tiny_records, tmp_path, kernel_path):
  model_dir = str(tmp_path / 'model')
  log_path = str(tmp_path / 'first.log')
  with open(log_path, 'w') as log:
    process = subprocess.Popen(
        _train_command(tiny_records['records'], model_dir, '--max_number_of_steps=100000',
                       '--save_checkpoints_steps=2'),
        env=_env(), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while (_checkpoint_step(model_dir) or 0) < 4 and time.time() < deadline:
      assert process.poll() is None, open(log_path).read()[-3000:]
      time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
  killed_at = _checkpoint_step(model_dir)
  assert killed_at >= 4
  result = subprocess.run(
      _train_command(tiny_records['records'], model_dir,
                     '--max_number_of_steps=%d' % (killed_at + 2), '--save_checkpoints_steps=2'),
      env=_env(), capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Resuming from %s/model.ckpt-%d (step %d of %d)' % (
      model_dir, killed_at, killed_at, killed_at + 2) in result.stderr
  assert 'step %d/%d' % (killed_at + 1, killed_at + 2) in result.stderr  # continues, not from 0
  assert 'Training reached step %d' % (killed_at + 2) in result.stderr
  assert _checkpoint_step(model_dir) == killed_at + 2


def test_train_and_eval_writes_map_to_tensorboard(tiny_records, tmp_path, kernel_path,
                                                  monkeypatch):
  model_dir = str(tmp_path / 'model')
  config = tiny_config(max_number_of_steps=2, save_checkpoints_steps=2)
  lines = []
  monkeypatch.setattr(progress, 'logging', type('Log', (), {
      'info': staticmethod(lambda fmt, *args: lines.append(fmt % args))}))
  step = train_tiny(config, tiny_records['records'], model_dir,
                        evaluate_during_training=True, throttle_secs=0)
  assert step == 2
  # The evaluation during training shows its progress: 8 val images in batches of 4 // 4.
  assert 'evaluation: 8/8 images (100%)' in [line.split(' | ')[0] for line in lines]
  tags = set()
  for path in glob.glob(os.path.join(model_dir, 'eval', 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      tags.update(value.tag for value in event.summary.value)
  assert {'mAP', 'AP/aeroplane', 'losses/classification_loss', 'loss'} <= tags
  train_tags = set()
  for path in glob.glob(os.path.join(model_dir, 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      train_tags.update(value.tag for value in event.summary.value)
  assert {'losses/total_loss', 'losses/regularization_loss', 'learning_rate',
          'positives_per_image', 'selected_anchor_accuracy',
          'images_without_objects'} <= train_tags
  assert any(tag.startswith('training_images') for tag in train_tags)
  saved = json.load(open(os.path.join(model_dir, 'ssd_config.json')))
  assert saved['model']['class_names'] == list(tiny_records['class_names'])


@pytest.mark.parametrize('changes, message', [
    (dict(lr_decay_factors=(1.0, 0.1)), 'needs one more value than --decay_boundaries'),
    (dict(decay_boundaries=(10, 5), lr_decay_factors=(1.0, 0.1, 0.01)), 'must increase'),
    (dict(checkpoint_path='vgg_16.ckpt'), 'needs --width_multiplier=1.0'),
    (dict(cpu_replicas=3), '--batch_size=4 is not divisible by the 3 replicas'),
])
def test_bad_settings_fail_with_their_flag(tiny_records, tmp_path, changes, message):
  config = tiny_config(**changes)
  with pytest.raises(ValueError, match=message):
    train_tiny(config, tiny_records['records'], str(tmp_path / 'model'))
  assert not os.path.exists(str(tmp_path / 'model' / 'checkpoint'))


def test_resuming_with_another_architecture_is_refused(tiny_records, tmp_path):
  model_dir = str(tmp_path / 'model')
  train_tiny(tiny_config(max_number_of_steps=1), tiny_records['records'], model_dir)
  wider = tiny_config(max_number_of_steps=2)
  wider = dataclasses.replace(wider, model=dataclasses.replace(wider.model,
                                                               width_multiplier=0.125))
  with pytest.raises(ValueError, match='was trained with other model settings '
                                       r'\(width_multiplier\)'):
    train_tiny(wider, tiny_records['records'], model_dir)
  accumulating = tiny_config(max_number_of_steps=2, gradient_accumulation_steps=2)
  with pytest.raises(ValueError, match='was trained with --gradient_accumulation_steps=1; resume '
                                       r'it with the same value \(not 2\)'):
    train_tiny(accumulating, tiny_records['records'], model_dir)


def test_cli_reports_a_bad_flag_in_one_sentence(tiny_records, tmp_path):
  result = subprocess.run(
      _train_command(tiny_records['records'], str(tmp_path / 'm'), '--num_classes=21'),
      env=_env(), capture_output=True, text=True, timeout=120)
  assert result.returncode == 1
  assert ('--num_classes=21 does not match the 5 class names + background; fix --num_classes or '
          '--class_names.') in result.stderr


def test_a_model_dir_from_before_the_caffe_settings_keeps_its_meaning(tmp_path):
  # An ssd_config.json written before extra_layer_padding and bipartite_matching existed.
  from utility import config as config_lib
  model_dir = tmp_path / 'old'
  model_dir.mkdir()
  saved = config_lib.to_dict(tiny_config())
  for key in ('extra_layer_padding', 'bipartite_matching'):
    del saved['model'][key]
  (model_dir / config_lib.CONFIG_FILENAME).write_text(json.dumps(saved))
  old = config_lib.load(str(model_dir)).model
  assert (old.extra_layer_padding, old.bipartite_matching) == ('same', 'per_gt')
  with pytest.raises(ValueError) as error:
    training.check_resumable(tiny_config(), str(model_dir))
  assert str(error.value) == (
      '%s was trained with other model settings (extra_layer_padding, bipartite_matching); use '
      'a new --model_dir or the same settings (--extra_layer_padding=same '
      '--bipartite_matching=per_gt).' % model_dir)
  legacy = dataclasses.replace(tiny_config(), model=old)
  training.check_resumable(legacy, str(model_dir))  # the old settings resume


@pytest.mark.parametrize('recipe, keras_application, alpha, backbone_variable, keras_weight', [
    ('ssd300_mobilenet_v1', 'MobileNet', 0.25, 'ssd300/mobilenet_v1/conv_dw_5/depthwise_weights',
     'conv_dw_5/depthwise_kernel'),
    ('ssdlite_mobilenet_v2', 'MobileNetV2', 0.35, 'ssdlite/mobilenet_v2/block_13_expand/weights',
     'block_13_expand/kernel'),
])
def test_mobilenet_recipes_train_from_keras_weights(tiny_records, tmp_path, kernel_path, recipe,
                                                    keras_application, alpha, backbone_variable,
                                                    keras_weight):
  from utility import keras_weights
  weights = str(tmp_path / 'imagenet.h5')
  with tf.Graph().as_default():
    getattr(tf.keras.applications, keras_application)(
        weights=None, include_top=False, input_shape=(128, 128, 3), alpha=alpha).save_weights(
            weights)
  model_dir = str(tmp_path / 'model')
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, 'train_ssd.py'),
       '--flagfile=' + os.path.join(REPO, 'configs', recipe + '.flags'),
       '--data_dir=' + tiny_records['records'], '--model_dir=' + model_dir, '--class_names=',
       '--train_image_size=128', '--width_multiplier=%s' % alpha, '--batch_size=4',
       '--max_number_of_steps=2', '--warmup_steps=0', '--learning_rate=0',
       '--save_checkpoints_steps=2', '--log_every_n_steps=1', '--shuffle_buffer=16',
       '--checkpoint_path=' + weights],
      env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
  assert result.returncode == 0, result.stdout[-3000:]
  num_weights = len(keras_weights.weight_shapes(weights))
  assert 'Initialising %d backbone variables from %s' % (num_weights, weights) in result.stdout
  assert 'Training reached step 2' in result.stdout
  # Learning rate 0: the trained checkpoint still holds the Keras values.
  trained = tf.train.load_checkpoint(model_dir).get_tensor(backbone_variable)
  np.testing.assert_array_equal(trained, keras_weights.read_weights(weights, [keras_weight])[
      keras_weight])
  # Evaluation and export take the backbone (and its image convention) from model_dir.
  summary_path = str(tmp_path / 'summary.json')
  evaluated = subprocess.run(
      [sys.executable, os.path.join(REPO, 'eval_ssd.py'), '--data_dir=' + tiny_records['records'],
       '--model_dir=' + model_dir, '--json_output=' + summary_path, '--batch_size=4'],
      env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
  assert evaluated.returncode == 0, evaluated.stdout[-3000:]
  summary = json.load(open(summary_path))
  assert summary['metric'] == 'voc07'
  assert sorted(summary['ap']) == sorted(tiny_records['class_names'])
  exported = subprocess.run(
      [sys.executable, os.path.join(REPO, 'export_ssd.py'), '--model_dir=' + model_dir,
       '--tflite'], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      timeout=600)
  assert exported.returncode == 0, exported.stdout[-3000:]
  settings = json.load(open(os.path.join(model_dir, 'export', 'tflite', 'postprocess.json')))
  assert settings['image_size'] == 128
  assert settings['mean_rgb'] == [127.5] * 3 and settings['std_rgb'] == [127.5] * 3  # Keras'
