import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from net import vgg
from utility import checkpoint
from utility import convert_vgg_checkpoint

tf1 = tf.compat.v1

WIDTH = 1.0 / 16  # Tiny backbone: conv1 8 ... conv5 32 channels, fc6/fc7 64.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _build_backbone(model_scope='ssd300'):
  """Builds the tiny backbone plus one non-backbone variable; returns {relative name: variable}."""
  images = tf1.placeholder(tf.float32, [None, 32, 32, 3])
  with tf1.variable_scope(model_scope):
    vgg.vgg16_reduced_fc(images, 'NHWC', WIDTH)
    tf1.get_variable('conv4_3_norm/scale', [32], initializer=tf1.constant_initializer(20.0))
  prefix = model_scope + '/vgg_16/'
  return {v.op.name[len(prefix):]: v for v in tf1.global_variables()
          if v.op.name.startswith(prefix)}


def _slim_arrays(prefix='vgg_16/', full=True, seed=0):
  """Fake slim checkpoint contents for the tiny backbone: full (or reduced) fc6/fc7, plus fc8."""
  with tf.Graph().as_default():
    shapes = {name: v.shape.as_list() for name, v in _build_backbone().items()}
  if full:
    c, f = shapes['fc6/weights'][2], shapes['fc6/weights'][3]
    shapes.update({'fc6/weights': [7, 7, c, 4 * f], 'fc6/biases': [4 * f],
                   'fc7/weights': [1, 1, 4 * f, 4 * f], 'fc7/biases': [4 * f],
                   'fc8/weights': [1, 1, 4 * f, 10], 'fc8/biases': [10]})
  rng = np.random.RandomState(seed)
  return {prefix + name: rng.randn(*shape).astype(np.float32) for name, shape in shapes.items()}


def _write_checkpoint(path, arrays):
  with tf.Graph().as_default():
    var_list = {name: tf1.Variable(value, name='v%d' % i)
                for i, (name, value) in enumerate(sorted(arrays.items()))}
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      tf1.train.Saver(var_list).save(session, path, write_meta_graph=False, write_state=False)
  return path


def _restore_backbone(checkpoint_path, **kwargs):
  """Builds the tiny backbone, runs the restore, returns ({relative name: value}, scale, plan)."""
  with tf.Graph().as_default():
    variables = _build_backbone()
    backbone_init = checkpoint.build_init_assignments(checkpoint_path, 'ssd300', **kwargs)
    [scale] = [v for v in tf1.global_variables() if v.op.name == 'ssd300/conv4_3_norm/scale']
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      backbone_init.run(session)
      values = session.run(variables)
      plan = [(v.op.name, name, decimated) for v, name, decimated in backbone_init.plan]
      return values, session.run(scale), plan


def _index_encoded(shape):
  """float64 array whose value spells its own index [i, j, c, o]: i*1e6 + j*1e4 + c*1e2 + o."""
  i, j, c, o = np.indices(shape)
  return i * 1e6 + j * 1e4 + c * 1e2 + o


def test_decimate_fc6_picks_every_third_tap_and_every_fourth_filter():
  kernel, bias = _index_encoded([7, 7, 2, 8]), np.arange(8.0)
  reduced_kernel, reduced_bias = checkpoint.decimate_fc6(kernel, bias)
  assert reduced_kernel.shape == (3, 3, 2, 2)
  expected = np.array([[[[i * 1e6 + j * 1e4 + c * 1e2 + o for o in (0, 4)] for c in (0, 1)]
                        for j in (0, 3, 6)] for i in (0, 3, 6)])
  np.testing.assert_array_equal(reduced_kernel, expected)
  np.testing.assert_array_equal(reduced_bias, [0.0, 4.0])


def test_decimate_fc7_picks_every_fourth_input_and_output():
  kernel, bias = _index_encoded([1, 1, 8, 12]), np.arange(12.0)
  reduced_kernel, reduced_bias = checkpoint.decimate_fc7(kernel, bias)
  expected = np.array([[[[c * 1e2 + o for o in (0, 4, 8)] for c in (0, 4)]]])
  np.testing.assert_array_equal(reduced_kernel, expected)
  np.testing.assert_array_equal(reduced_bias, [0.0, 4.0, 8.0])


def test_full_slim_checkpoint_initialises_the_backbone_with_decimated_fc(tmp_path):
  arrays = _slim_arrays()
  path = _write_checkpoint(str(tmp_path / 'vgg_16.ckpt'), arrays)
  values, scale, plan = _restore_backbone(path)
  assert len(values) == 30  # 15 layers x (weights, biases)
  for name, value in values.items():
    full = arrays['vgg_16/' + name]
    expected = checkpoint.decimate(name, full) if name.startswith(('fc6', 'fc7')) else full
    np.testing.assert_array_equal(value, expected, err_msg=name)
  np.testing.assert_array_equal(values['fc6/weights'],
                                arrays['vgg_16/fc6/weights'][0::3, 0::3, :, 0::4])
  decimated = sorted(name for _, _, name in plan if name)
  assert decimated == ['fc6/biases', 'fc6/weights', 'fc7/biases', 'fc7/weights']
  np.testing.assert_array_equal(scale, np.full([32], 20.0))  # Not a backbone variable.


def test_a_backbone_warm_start_logs_the_restore_report(tmp_path, caplog):
  path = _write_checkpoint(str(tmp_path / 'vgg_16.ckpt'), _slim_arrays())
  with caplog.at_level(logging.INFO):
    with tf.Graph().as_default():
      _build_backbone()
      report = checkpoint.build_init_assignments(path, 'ssd300').report
  assert len(report.restored) == 30 and report.restored[0].startswith('ssd300/vgg_16/conv1')
  assert report.skipped == []
  assert report.missing == ['ssd300/conv4_3_norm/scale']  # freshly initialised, not backbone
  assert report.unused == ['vgg_16/fc8/biases', 'vgg_16/fc8/weights']  # slim's classifier
  messages = [r.getMessage() for r in caplog.records]
  assert ('Warm start from %s: 30 variables restored, 0 skipped (shape mismatch), 1 missing '
          '(freshly initialised), 2 checkpoint tensors unused.' % path) in messages
  assert '  missing: ssd300/conv4_3_norm/scale' in messages
  assert '  unused: vgg_16/fc8/biases, vgg_16/fc8/weights' in messages


def test_reduced_checkpoint_without_the_slim_prefix_loads_as_it_is(tmp_path):
  arrays = _slim_arrays(prefix='', full=False)
  path = _write_checkpoint(str(tmp_path / 'reduced.ckpt'), arrays)
  values, _, plan = _restore_backbone(path)
  for name, value in values.items():
    np.testing.assert_array_equal(value, arrays[name], err_msg=name)
  assert ('ssd300/vgg_16/fc6/weights', 'fc6/weights', None) in plan


def test_a_directory_resolves_to_its_checkpoint(tmp_path):
  path = _write_checkpoint(str(tmp_path / 'vgg_16.ckpt'), _slim_arrays())
  # The extracted slim tarball: one checkpoint, no 'checkpoint' state file.
  assert checkpoint.resolve_checkpoint_path(str(tmp_path)) == path
  values, _, _ = _restore_backbone(str(tmp_path))
  assert values['fc6/weights'].shape == (3, 3, 32, 64)


def test_no_checkpoint_at_the_path_is_one_clear_sentence(tmp_path):
  missing = str(tmp_path / 'vgg_16.ckpt')
  message = ("No checkpoint found at '%s': expected a TF checkpoint such as TF-slim vgg_16.ckpt "
             "(from http://download.tensorflow.org/models/vgg_16_2016_08_28.tar.gz) or a "
             "directory holding one." % missing)
  with tf.Graph().as_default():
    _build_backbone()
    with pytest.raises(checkpoint.CheckpointError) as error:
      checkpoint.build_init_assignments(missing, 'ssd300')
  assert str(error.value) == message
  with pytest.raises(checkpoint.CheckpointError, match="No checkpoint found at '%s'" % tmp_path):
    checkpoint.resolve_checkpoint_path(str(tmp_path))  # An empty directory.
  (tmp_path / 'garbage.ckpt').write_bytes(b'not a checkpoint')
  with pytest.raises(checkpoint.CheckpointError, match='No checkpoint found at'):
    checkpoint.resolve_checkpoint_path(str(tmp_path / 'garbage.ckpt'))


def test_missing_backbone_variable_is_named(tmp_path):
  arrays = _slim_arrays()
  del arrays['vgg_16/conv3/conv3_2/weights']
  path = _write_checkpoint(str(tmp_path / 'vgg_16.ckpt'), arrays)
  with tf.Graph().as_default():
    _build_backbone()
    with pytest.raises(checkpoint.CheckpointError) as error:
      checkpoint.build_init_assignments(path, 'ssd300')
  assert str(error.value) == (
      "Checkpoint '%s' has no variable 'vgg_16/conv3/conv3_2/weights' or 'conv3/conv3_2/weights' "
      "for the backbone variable ssd300/vgg_16/conv3/conv3_2/weights: expected a TF-slim vgg_16 "
      "checkpoint (set the checkpoint model scope to its variable prefix)." % path)


def test_shape_neither_full_nor_reduced_is_a_clear_error(tmp_path):
  arrays = _slim_arrays()
  arrays['vgg_16/fc6/weights'] = np.zeros([5, 5, 32, 256], np.float32)
  path = _write_checkpoint(str(tmp_path / 'vgg_16.ckpt'), arrays)
  with tf.Graph().as_default():
    _build_backbone()
    with pytest.raises(checkpoint.CheckpointError) as error:
      checkpoint.build_init_assignments(path, 'ssd300')
  assert str(error.value) == (
      "Checkpoint '%s' has vgg_16/fc6/weights with shape [5, 5, 32, 256], expected [3, 3, 32, 64] "
      "(reduced) or [7, 7, 32, 256] (full slim, decimated on load) for ssd300/vgg_16/fc6/weights "
      "(is the backbone width 1.0?)." % path)


def test_excluded_scopes_are_not_restored(tmp_path):
  arrays = {k: v for k, v in _slim_arrays().items() if not k.startswith('vgg_16/fc7')}
  path = _write_checkpoint(str(tmp_path / 'vgg_16.ckpt'), arrays)
  values, _, plan = _restore_backbone(path, exclude_scopes=['vgg_16/fc7'])
  assert [p for p in plan if 'fc7' in p[0]] == []
  assert len(plan) == 28
  np.testing.assert_array_equal(values['fc7/biases'], np.zeros([64]))  # Its own initializer.


def test_pretrained_loading_refuses_a_width_multiplier(tmp_path):
  with pytest.raises(checkpoint.CheckpointError, match=r"Pretrained VGG16 weights from "
                                                       r"'vgg_16.ckpt' need width_multiplier 1.0, "
                                                       r"got 0.5"):
    checkpoint.vgg_init_fn('vgg_16.ckpt', 'ssd300', width_multiplier=0.5)


def test_model_dir_has_checkpoint(tmp_path):
  model_dir = str(tmp_path / 'model')
  assert not checkpoint.model_dir_has_checkpoint(model_dir)  # Does not exist yet.
  os.makedirs(model_dir)
  assert not checkpoint.model_dir_has_checkpoint(model_dir)  # Empty.
  with tf.Graph().as_default():
    tf1.Variable(1.0)
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      tf1.train.Saver().save(session, os.path.join(model_dir, 'model.ckpt'), global_step=7)
  assert checkpoint.model_dir_has_checkpoint(model_dir)


def _train_session_value(model_dir, pretrained_path, add):
  """Like a model_fn + Estimator: restore the backbone only on a fresh start, then add `add`."""
  with tf.Graph().as_default():
    variables = _build_backbone()
    bias = variables['conv1/conv1_1/biases']
    global_step = tf1.train.get_or_create_global_step()
    init_fn = None
    if not checkpoint.model_dir_has_checkpoint(model_dir):
      init_fn = checkpoint.vgg_init_fn(pretrained_path, 'ssd300')
    train_op = tf.group(bias.assign_add(tf.fill(tf.shape(bias), add)),
                        global_step.assign_add(1))
    scaffold = tf1.train.Scaffold(init_fn=init_fn)
    with tf1.train.MonitoredTrainingSession(checkpoint_dir=model_dir, scaffold=scaffold,
                                            save_summaries_steps=None) as session:
      session.run(train_op)
      return session.run(bias)


def test_restore_runs_on_a_fresh_start_and_resume_wins(tmp_path):
  arrays = _slim_arrays()
  path = _write_checkpoint(str(tmp_path / 'vgg_16.ckpt'), arrays)
  model_dir = str(tmp_path / 'model')
  pretrained_bias = arrays['vgg_16/conv1/conv1_1/biases']
  first = _train_session_value(model_dir, path, 1.0)
  np.testing.assert_allclose(first, pretrained_bias + 1.0, rtol=1e-6)
  second = _train_session_value(model_dir, path, 1.0)  # Resumes from model_dir's checkpoint.
  np.testing.assert_allclose(second, pretrained_bias + 2.0, rtol=1e-6)


def test_convert_cli_round_trip(tmp_path):
  arrays = _slim_arrays()
  source = _write_checkpoint(str(tmp_path / 'vgg_16.ckpt'), arrays)
  output = str(tmp_path / 'out' / 'vgg_16_reduced.ckpt')
  subprocess.run([sys.executable, '-m', 'utility.convert_vgg_checkpoint', '--input=' + source,
                  '--output=' + output], cwd=REPO_ROOT, check=True, capture_output=True,
                 env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
  reader = tf.train.load_checkpoint(output)
  shapes = reader.get_variable_to_shape_map()
  assert sorted(shapes) == sorted(k for k in arrays if not k.startswith('vgg_16/fc8'))
  assert shapes['vgg_16/fc6/weights'] == [3, 3, 32, 64]
  assert shapes['vgg_16/fc7/weights'] == [1, 1, 64, 64]
  np.testing.assert_array_equal(reader.get_tensor('vgg_16/fc7/weights'),
                                arrays['vgg_16/fc7/weights'][:, :, 0::4, 0::4])
  np.testing.assert_array_equal(reader.get_tensor('vgg_16/conv5/conv5_3/weights'),
                                arrays['vgg_16/conv5/conv5_3/weights'])
  assert sorted(os.listdir(os.path.dirname(output))) == [
      'vgg_16_reduced.ckpt.data-00000-of-00001', 'vgg_16_reduced.ckpt.index']  # No temp files.
  # The converted checkpoint loads as it is, with the values the on-the-fly decimation gives.
  values, _, plan = _restore_backbone(output)
  assert all(decimated is None for _, _, decimated in plan)
  np.testing.assert_array_equal(values['fc6/biases'], arrays['vgg_16/fc6/biases'][0::4])
  with pytest.raises(checkpoint.CheckpointError, match='already has a reduced fc6'):
    convert_vgg_checkpoint.reduce_variables(output)
