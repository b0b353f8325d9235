"""Progress lines and closing summaries of the long commands (utility/progress.py, net/hooks.py,
the converter, evaluation and export)."""

import collections
import os

import pytest
import tensorflow as tf

from dataset import input_fn
from net import evaluation
from net import export
from net import hooks
from tests.conftest import make_tiny_records, tiny_config
from utility import progress


class FakeClock(object):
  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def _captured(monkeypatch, module=progress):
  """Lines a module's absl logging.info writes (by default the Progress logger's), captured."""
  lines = []

  class Log(object):
    @staticmethod
    def info(fmt, *args):
      lines.append(fmt % args)
  monkeypatch.setattr(module, 'logging', Log)
  return lines


def test_progress_lines_rate_eta_and_throttling():
  clock = FakeClock()
  logged = []
  counter = progress.Progress('val: converting', 100, 'images', every_seconds=10.0,
                              clock=clock, log=logged.append)
  clock.now += 2.0
  counter.update(10)  # the first update always logs
  clock.now += 3.0
  counter.update(10)  # 3 s after the last line: quiet
  clock.now += 7.0
  counter.update(20)  # 10 s after: logs; 40 images in 12 s
  clock.now += 1.0
  assert counter.finish(10) == 13.0
  assert logged == [
      'val: converting: 10/100 images (10%) | 5.0 images/s | elapsed 0m02s, ETA 0m18s',
      'val: converting: 40/100 images (40%) | 3.3 images/s | elapsed 0m12s, ETA 0m18s',
      'val: converting: 50/100 images (50%) | 3.8 images/s | elapsed 0m13s, ETA 0m13s']
  clock.now += 50.0
  assert counter.elapsed == 13.0  # the clock stopped at finish()


def test_progress_without_total_or_eta_and_durations():
  clock = FakeClock()
  logged = []
  counter = progress.Progress('export', 0, 'stages', every_seconds=0, clock=clock,
                              log=logged.append, eta=False)
  clock.now += 4.0
  counter.update(1, 'writing')
  assert logged == ['export: 1 stages | 0.2 stages/s | elapsed 0m04s | writing']
  assert progress.format_duration(3725.4) == '1h02m05s'
  assert progress.format_duration(-3) == '0m00s'


def _write_records(path, payloads):
  with tf.io.TFRecordWriter(path) as writer:
    for payload in payloads:
      writer.write(payload)


def test_count_records_reads_the_framing_and_names_a_truncated_file(tmp_path):
  _write_records(str(tmp_path / 'val-00000-of-00002'), [b'a' * 10, b'', b'b' * 300])
  _write_records(str(tmp_path / 'val-00001-of-00002'), [b'c' * 70000])
  assert input_fn.count_records(str(tmp_path / 'val-*')) == 4
  whole = (tmp_path / 'val-00001-of-00002').read_bytes()
  (tmp_path / 'val-00001-of-00002').write_bytes(whole[:-5])
  with pytest.raises(ValueError, match='val-00001-of-00002 is not a complete TFRecord file'):
    input_fn.count_records(str(tmp_path / 'val-*'))


RunValues = collections.namedtuple('RunValues', ['results'])


def test_evaluation_hook_counts_images_with_a_short_last_batch(monkeypatch):
  lines = _captured(monkeypatch)
  hook = hooks.EvaluationProgressHook(num_images=5, batch_size=2, every_seconds=0)
  hook.begin()
  for _ in range(3):
    hook.after_run(None, None)
  hook.end(None)
  assert hook.progress.done == 5
  assert [line.split(' | ')[0] for line in lines] == [
      'evaluation: 2/5 images (40%)', 'evaluation: 4/5 images (80%)',
      'evaluation: 5/5 images (100%)', 'evaluation: 5/5 images (100%)']


def test_training_hook_closes_with_a_summary_paragraph(monkeypatch):
  now = [1000.0]
  monkeypatch.setattr(hooks.time, 'time', lambda: now[0])
  logged = _captured(monkeypatch, hooks)
  hook = hooks.TrainingProgressHook({'step': None, 'loss': None, 'lr': None},
                                    global_batch_size=8, max_steps=20, every_n_steps=100)
  hook.begin()
  for step in range(10, 14):  # resumed at step 10: runs 11..14
    hook.after_run(None, RunValues({'step': step, 'loss': 2.5 - 0.1 * step, 'lr': 1e-3}))
    now[0] += 2.0
  hook.end(None)
  assert logged[-1] == ('Training summary: steps 11 to 14 of 20 (4 steps, 32 images) in 0m08s, '
                        '4.00 images/s; at the last step loss 1.2, lr 0.001.')


def test_conversion_logs_progress_per_set(tmp_path, monkeypatch):
  lines = _captured(monkeypatch)
  _, records = make_tiny_records(tmp_path, num_trainval=3, num_test=2, seed=1, min_size=64,
                                 max_size=96, shards=1)
  finals = [line.split(' | ')[0] for line in lines if '(100%)' in line]
  assert finals[-2:] == ['train: converting: 3/3 images (100%)',
                         'val: converting: 2/2 images (100%)']
  assert input_fn.count_records(os.path.join(records, 'val-*')) == 2


def test_export_logs_its_stages_and_closes_with_a_paragraph(tmp_path, monkeypatch):
  lines = _captured(monkeypatch)

  def marker_write(unused_config, unused_checkpoint, path):
    os.makedirs(path)
    with open(os.path.join(path, 'saved_model.pb'), 'wb') as f:
      f.write(b'x' * 2**20)

  monkeypatch.setattr(export, '_write_saved_model', marker_write)
  export_dir = str(tmp_path / 'export')
  export.export_saved_model(tiny_config(), '/m/model.ckpt-7', export_dir)
  stages = [line.split(' | ')[0] + ' | ' + line.split(' | ')[-1] for line in lines]
  assert stages == [
      'export: 0/2 stages (0%) | building the serving graph, restoring /m/model.ckpt-7, '
      'writing the SavedModel',
      'export: 1/2 stages (50%) | moving the export into place',
      'export: 2/2 stages (100%) | wrote ' + export_dir]
  paragraph = export.summary_paragraph(export.serving_config(tiny_config()), '/m/model.ckpt-7',
                                       export_dir, 65.0)
  assert paragraph.startswith('Exported /m/model.ckpt-7 (NHWC, ')
  assert paragraph.endswith('to %s: 1.0 MB in 1m05s. Serve it with simple_ssd_demo.py '
                            '--saved_model=%s, or tf.saved_model.load.' % (export_dir, export_dir))


class _Summarised(object):
  def __init__(self, summary):
    self._summary = summary

  def summary(self):
    return self._summary


def test_evaluation_summary_paragraph():
  clock = FakeClock()
  counter = progress.Progress('evaluation', 8, 'images', clock=clock, log=lambda line: None)
  counter.update(8)
  clock.now += 4.0
  counter.finish()
  assert evaluation.summary_paragraph(_Summarised({'mAP': 0.75, 'ap': {}}), '/m/ckpt-3', 3,
                                      counter) == (
      'Evaluated 8 images from /m/ckpt-3 (step 3) in 0m04s, 2.0 images/s: mAP 0.7500.')
  assert evaluation.summary_paragraph(_Summarised({'AP': 0.5}), 'c', 1, counter).endswith(
      ': AP 0.5000.')
  assert evaluation.summary_paragraph(_Summarised({'mAP': None}), 'c', 1, counter).endswith(
      ': no AP (see above).')
