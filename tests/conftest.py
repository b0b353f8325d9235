"""Test-wide setup: graph mode, quiet TF, the repo root on sys.path."""

import os
import re
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

tf.compat.v1.disable_eager_execution()


import pytest  # noqa: E402

TINY_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle')


@pytest.fixture(scope='session')
def tiny_records(tmp_path_factory):
  """A small synthetic VOC tree converted to TFRecords, shared by the tests that train.

  Returns:
    dict with 'voc_root' (the folder holding VOCdevkit), 'records' (train-*/val-* shards,
    2 each), 'class_names'.
  """
  from dataset import convert_tfrecords
  from dataset import make_synthetic_voc
  root = tmp_path_factory.mktemp('tiny_voc')
  voc_root, records = str(root / 'voc'), str(root / 'records')
  make_synthetic_voc.generate_voc(voc_root, num_trainval=24, num_test=8, seed=3,
                                  class_names=TINY_CLASSES, min_size=96, max_size=160,
                                  num_workers=1)
  convert_tfrecords.convert(
      voc_root, records, convert_tfrecords.parse_split_specs('VOC2007:trainval', 'train'),
      convert_tfrecords.parse_split_specs('VOC2007:test', 'val'), train_shards=2, val_shards=2,
      num_workers=1, class_names=TINY_CLASSES)
  return {'voc_root': voc_root, 'records': records, 'class_names': TINY_CLASSES}


def tiny_config(**train_overrides):
  """A small SSD (ssd_quick at 160 px, width 1/16) on TINY_CLASSES, fast enough for tests."""
  from utility import config
  train = dict(batch_size=4, optimizer='adam', learning_rate=1e-3, warmup_steps=0,
               decay_boundaries=(), lr_decay_factors=(1.0,), max_number_of_steps=2,
               save_checkpoints_steps=1, log_every_n_steps=1, save_summary_steps=1,
               tf_random_seed=7)
  train.update(train_overrides)
  return config.SSDConfig(
      model=config.ModelConfig(architecture='ssd_quick', image_size=160, class_names=TINY_CLASSES,
                               width_multiplier=0.0625, anchor_min_scale=0.1,
                               anchor_max_scale=0.9),
      train=config.TrainConfig(**train),
      input=config.InputConfig(shuffle_buffer=16, max_boxes_per_image=20))


def train_tiny(config, records, model_dir, **kwargs):
  """net.training.train on the tiny records (input functions as train_ssd.py builds them)."""
  from dataset import input_fn
  from net import training
  train_fn, eval_fn = input_fn.make_input_fns(records, config)
  return training.train(config, model_dir, train_fn, eval_fn, **kwargs)


# --- Kernel paths -----------------------------------------------------------------------------
# TensorFlow runs different CPU kernels by machine: oneDNN where the CPU has AVX-512 VNNI/BF16 or
# AMX, its default (Eigen) kernels elsewhere, which lack some ops (NCHW, dilated-convolution
# gradients). A test that takes the argument `kernel_path` runs twice, each time in a child
# pytest process with TF_ENABLE_ONEDNN_OPTS=0 (default kernels) or =1 (oneDNN), whatever this
# machine would pick, so a change that works on one kind of CPU only fails here on every kind.
# `@pytest.mark.kernel_paths('1')` restricts a test to the listed paths.
#
# The children run two at a time, in collection order, while the main process waits for each
# in turn: much of a child's time is single-threaded graph building, so two of them share the
# machine's cores better than one.

KERNEL_PATHS = {'0': 'onednn_off', '1': 'onednn_on'}
CONCURRENT_CHILDREN = 2
_CHILD_ENV = 'SSD_TEST_KERNEL_PATH'
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_configure(config):
  config.addinivalue_line('markers', "kernel_paths(*values): TF_ENABLE_ONEDNN_OPTS values "
                          "('0', '1') a kernel_path test runs under (default both).")


def pytest_generate_tests(metafunc):
  if 'kernel_path' not in metafunc.fixturenames:
    return
  marker = metafunc.definition.get_closest_marker('kernel_paths')
  values = list(marker.args) if marker else list(KERNEL_PATHS)
  metafunc.parametrize('kernel_path', values, ids=[KERNEL_PATHS[v] for v in values])


def _kernel_path_of(item):
  callspec = getattr(item, 'callspec', None)
  return callspec.params.get('kernel_path') if callspec is not None else None


class _Children:
  """Child pytest processes of the kernel_path tests, started ahead, two at a time."""

  def __init__(self, items):
    self.pending = [item.nodeid for item in items if _kernel_path_of(item) is not None]
    self.values = {item.nodeid: _kernel_path_of(item) for item in items}
    self.running = {}  # nodeid -> (Popen, log file)

  def _start(self, nodeid):
    import subprocess  # pylint: disable=import-outside-toplevel
    import tempfile  # pylint: disable=import-outside-toplevel
    value = self.values[nodeid]
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=value, TF_CPP_MIN_LOG_LEVEL='2')
    env[_CHILD_ENV] = value
    log = tempfile.TemporaryFile(mode='w+')
    process = subprocess.Popen(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '--no-header',
         '-o', 'console_output_style=classic', nodeid],
        cwd=_REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    self.running[nodeid] = (process, log)

  def _fill(self, first):
    if first in self.pending:
      self.pending.remove(first)
      self._start(first)
    while self.pending and len(self.running) < CONCURRENT_CHILDREN:
      self._start(self.pending.pop(0))

  def result(self, nodeid):
    """(return code, output) of the child that ran nodeid."""
    self._fill(nodeid)
    process, log = self.running.pop(nodeid)
    try:
      process.wait(timeout=1800)
    except BaseException:
      process.kill()
      raise
    log.seek(0)
    output = log.read()
    log.close()
    self._fill(None)
    return process.returncode, output

  def stop(self):
    for process, log in self.running.values():
      process.kill()
      log.close()
    self.running.clear()


@pytest.hookimpl(trylast=True)  # after -k / -m deselection
def pytest_collection_modifyitems(session, config, items):
  del config
  if os.environ.get(_CHILD_ENV) is None:
    session.kernel_path_children = _Children(items)


def pytest_sessionfinish(session, exitstatus):
  del exitstatus
  children = getattr(session, 'kernel_path_children', None)
  if children is not None:
    children.stop()


def _check_child_kernel_path(value):
  from utility import hardware
  assert os.environ.get('TF_ENABLE_ONEDNN_OPTS') == value, (
      'child for kernel path %s runs with TF_ENABLE_ONEDNN_OPTS=%r'
      % (value, os.environ.get('TF_ENABLE_ONEDNN_OPTS')))
  assert hardware.onednn_enabled() == (value == '1'), (
      'TF_ENABLE_ONEDNN_OPTS=%s did not set oneDNN %s in this TensorFlow build'
      % (value, 'on' if value == '1' else 'off'))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
  """Runs a kernel_path test in a child process with that path (the body runs in the child)."""
  value = _kernel_path_of(pyfuncitem)
  if value is None:
    return None
  if os.environ.get(_CHILD_ENV) == value:
    _check_child_kernel_path(value)
    return None  # pytest calls the test function here, in the child
  returncode, output = pyfuncitem.session.kernel_path_children.result(pyfuncitem.nodeid)
  if returncode != 0:
    raise AssertionError('%s failed with TF_ENABLE_ONEDNN_OPTS=%s:\n%s'
                         % (pyfuncitem.nodeid, value, output[-8000:]))
  if not re.search(r'\b1 passed\b', output):
    raise AssertionError('%s with TF_ENABLE_ONEDNN_OPTS=%s did not run exactly one test:\n%s'
                         % (pyfuncitem.nodeid, value, output[-2000:]))
  return True
