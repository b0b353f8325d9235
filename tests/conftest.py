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


def make_tiny_records(root, num_trainval=24, num_test=8, seed=3, min_size=96, max_size=160,
                      shards=2):
  """Generates a synthetic VOC tree on TINY_CLASSES under root and converts its VOC2007
  trainval/test to train-*/val-* shards; returns (voc_root, records)."""
  from dataset import convert_tfrecords
  from dataset import make_synthetic_voc
  voc_root, records = str(root / 'voc'), str(root / 'records')
  make_synthetic_voc.generate_voc(voc_root, num_trainval=num_trainval, num_test=num_test,
                                  seed=seed, class_names=TINY_CLASSES, min_size=min_size,
                                  max_size=max_size, num_workers=1)
  convert_tfrecords.convert(
      voc_root, records, convert_tfrecords.parse_split_specs('VOC2007:trainval', 'train'),
      convert_tfrecords.parse_split_specs('VOC2007:test', 'val'), train_shards=shards,
      val_shards=shards, num_workers=1, class_names=TINY_CLASSES)
  return voc_root, records


@pytest.fixture(scope='session')
def tiny_records(tmp_path_factory):
  """A small synthetic VOC tree converted to TFRecords, shared by the tests that train.

  Returns:
    dict with 'voc_root' (the folder holding VOCdevkit), 'records' (train-*/val-* shards,
    2 each), 'class_names'.
  """
  voc_root, records = make_tiny_records(tmp_path_factory.mktemp('tiny_voc'))
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


def same_kernels_env(**extra):
  """os.environ for a script run in a subprocess whose numbers a test compares with this
  process's: TF_ENABLE_ONEDNN_OPTS pinned to the kernels this process runs (the scripts
  otherwise decide oneDNN themselves, utility/onednn.py, and on an AVX2 CPU would turn it on)."""
  from utility import hardware
  env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS='1' if hardware.onednn_enabled() else '0')
  env.update(extra)
  return env


def train_tiny(config, records, model_dir, **kwargs):
  """net.training.train on the tiny records (input functions as train_ssd.py builds them)."""
  from dataset import input_fn
  from net import training
  from net import model_spec
  train_fn, eval_fn = input_fn.make_input_fns(records, config,
                                              model_spec.model_inputs(config.model))
  return training.train(config, model_dir, train_fn, eval_fn, **kwargs)


# --- Kernel paths -----------------------------------------------------------------------------
# TensorFlow runs different CPU kernels by machine: oneDNN where the CPU has AVX-512 VNNI/BF16 or
# AMX, its default (Eigen) kernels elsewhere, which lack some ops (NCHW, dilated-convolution
# gradients). A test that takes the argument `kernel_path` runs once per path, in a child pytest
# process with TF_ENABLE_ONEDNN_OPTS=0 (default kernels) or =1 (oneDNN), whatever this machine
# would pick, so a change that works on one kind of CPU only fails here on every kind.
# `@pytest.mark.kernel_paths('1')` restricts a test to the listed paths.
#
# One child per path runs all of that path's tests; both start as soon as the tests are
# collected and run beside the in-process tests, and the main process reports the kernel_path
# tests last, each with its child's outcome and output.

KERNEL_PATHS = {'0': 'onednn_off', '1': 'onednn_on'}
_CHILD_ENV = 'SSD_TEST_KERNEL_PATH'
_REPORT_ENV = 'SSD_TEST_KERNEL_PATH_REPORT'
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


class _Child:
  """The child pytest process running the tests of one kernel path."""

  def __init__(self, value, nodeids):
    import subprocess  # pylint: disable=import-outside-toplevel
    import tempfile  # pylint: disable=import-outside-toplevel
    self.value, self.nodeids, self.results = value, nodeids, None
    self.log = tempfile.TemporaryFile(mode='w+')
    handle, self.report_path = tempfile.mkstemp(prefix='kernel_path_%s_' % value,
                                                suffix='.json')
    os.close(handle)
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=value, TF_CPP_MIN_LOG_LEVEL='2')
    env.update({_CHILD_ENV: value, _REPORT_ENV: self.report_path})
    self.process = subprocess.Popen(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '--no-header',
         '-o', 'console_output_style=classic'] + nodeids,
        cwd=_REPO_ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

  def result(self, nodeid):
    """(passed, text): the child's outcome of nodeid and its failure report or output."""
    if self.results is None:
      import json  # pylint: disable=import-outside-toplevel
      try:
        self.process.wait(timeout=3600)
      finally:
        if self.process.poll() is None:
          self.process.kill()
      with open(self.report_path, encoding='utf-8') as f:
        text = f.read()
      self.results = json.loads(text) if text else {}
      os.remove(self.report_path)
      self.log.seek(0)
      self.output = self.log.read()
    if nodeid not in self.results:
      return False, 'the child process did not report this test:\n' + self.output[-6000:]
    outcome, text = self.results[nodeid]
    return outcome == 'passed', text

  def stop(self):
    if self.process.poll() is None:
      self.process.kill()
    self.log.close()
    if os.path.exists(self.report_path):
      os.remove(self.report_path)


@pytest.hookimpl(trylast=True)  # after -k / -m deselection
def pytest_collection_modifyitems(session, config, items):
  del config
  if os.environ.get(_CHILD_ENV) is not None:
    return
  by_value = {}
  for item in items:
    value = _kernel_path_of(item)
    if value is not None:
      by_value.setdefault(value, []).append(item.nodeid)
  # Their results are collected last, so the in-process tests run while the children work.
  items.sort(key=lambda item: _kernel_path_of(item) is not None)
  session.kernel_path_children = {value: _Child(value, nodeids)
                                  for value, nodeids in by_value.items()}


def pytest_sessionfinish(session, exitstatus):
  del exitstatus
  for child in getattr(session, 'kernel_path_children', {}).values():
    child.stop()
  report_path = os.environ.get(_REPORT_ENV)
  if report_path and os.environ.get(_CHILD_ENV) is not None:
    import json  # pylint: disable=import-outside-toplevel
    with open(report_path, 'w', encoding='utf-8') as f:
      json.dump(_CHILD_RESULTS, f)


def pytest_runtest_logreport(report):
  """In a child: remember each test's outcome (a failed setup or call fails it)."""
  if os.environ.get(_CHILD_ENV) is None:
    return
  if report.when == 'call' or report.failed:
    previous = _CHILD_RESULTS.get(report.nodeid)
    if previous is None or previous[0] == 'passed':
      _CHILD_RESULTS[report.nodeid] = (report.outcome, report.longreprtext)


_CHILD_RESULTS = {}  # in a child: nodeid -> (outcome, failure text)


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
  """Runs a kernel_path test in its path's child process (the body runs in the child)."""
  value = _kernel_path_of(pyfuncitem)
  if value is None:
    return None
  if os.environ.get(_CHILD_ENV) == value:
    _check_child_kernel_path(value)
    return None  # pytest calls the test function here, in the child
  passed, text = pyfuncitem.session.kernel_path_children[value].result(pyfuncitem.nodeid)
  if not passed:
    raise AssertionError('%s failed with TF_ENABLE_ONEDNN_OPTS=%s:\n%s'
                         % (pyfuncitem.nodeid, value, text[-8000:]))
  return True
