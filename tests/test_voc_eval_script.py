import json
import os
import subprocess
import sys

import pytest

import voc_eval
from tests.test_voc_ground_truth import write_voc_tree
from utility import voc_metric
from utility.voc_metric import make_detections

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tree_and_detections(tmp_path):
  """Three test images with one 'cat' each (at xmin 48, 10, 100; the last is difficult)."""
  root = str(tmp_path / 'VOCdevkit')
  write_voc_tree(root, {'000001': (48, 0), '000002': (10, 0), '000003': (100, 1)})
  det_dir = str(tmp_path / 'dets')
  voc_metric.write_detections(det_dir, {'cat': make_detections([
      ('000003', 0.95, 100, 20, 300, 200),   # on the difficult GT: ignored
      ('000001', 0.9, 48, 20, 300, 200),     # TP
      ('000001', 0.8, 48, 20, 300, 200),     # duplicate: FP
      ('000002', 0.7, 10, 20, 300, 200),     # TP
  ])}, class_names=('cat', 'dog'))
  return root, det_dir


def test_run_eval_writes_the_json_contract(tmp_path):
  root, det_dir = _tree_and_detections(tmp_path)
  json_path = str(tmp_path / 'out' / 'map.json')
  summary, table = voc_eval.run_eval(root, '2007', 'test', det_dir, metric='voc07',
                                     class_names='cat,dog', json_output=json_path,
                                     pr_curves_dir=str(tmp_path / 'pr'),
                                     cache_dir=str(tmp_path / 'cache'))
  # cat: npos 2; ignored, TP, FP, TP -> recall 0 1/2 1/2 1, precision 0 1 1/2 2/3.
  # 11-point: t = 0 .. .5 -> 1; t = .6 .. 1 -> 2/3: (6 + 5 * 2/3) / 11 = 28/33.
  # dog: no ground truth anywhere -> null, left out of the mean.
  with open(json_path) as f:
    text = f.read()
  contract = json.loads(text)
  assert list(contract) == ['mAP', 'ap', 'metric']
  assert contract['ap'] == {'cat': pytest.approx(28 / 33, abs=1e-12), 'dog': None}
  assert '"dog": null' in text
  assert contract['mAP'] == pytest.approx(28 / 33, abs=1e-12) and contract['metric'] == 'voc07'
  assert summary == contract
  assert table[1].split() == ['cat', '%.4f' % (28 / 33), '2', '4']
  assert table[2].split() == ['dog', 'n/a', '0', '0']
  assert table[-1].startswith('mAP ')
  assert os.listdir(tmp_path / 'pr') == ['pr_cat.png']
  # area: envelope 1 up to recall 1/2, then 2/3: 1/2 * 1 + 1/2 * 2/3 = 5/6.
  area, _ = voc_eval.run_eval(root, 'VOC2007', 'test', det_dir, metric='area',
                              class_names='cat,dog')
  assert area == {'mAP': pytest.approx(5 / 6, abs=1e-12),
                  'ap': {'cat': pytest.approx(5 / 6, abs=1e-12), 'dog': None}, 'metric': 'area'}


def test_run_eval_error_analysis_follows_the_table(tmp_path):
  root, det_dir = _tree_and_detections(tmp_path)
  _, lines = voc_eval.run_eval(root, '2007', 'test', det_dir, class_names='cat,dog',
                               error_analysis=True)
  report = lines[lines.index('') + 1:]
  # cat: 2 GT, so the top 2 counted detections: the TP on 000001 and its duplicate (the one on
  # the difficult GT is not counted); the TP on 000002 comes third. Both cats are
  # sqrt(253 * 181) / 375 = 0.57 and sqrt(291 * 181) / 375 = 0.61 of the shorter side.
  assert [line.split() for line in report[2:5]] == [
      ['cat', '2', '1', '1', '0', '0', '0'], ['dog', '0', '0', '0', '0', '0', '0'],
      ['all', '2', '1', '1', '0', '0', '0']]
  assert report[5].startswith('Recall by GT size')
  assert report[6:] == ['  >= 0.4         2 GT  0.500 / 1.000']


def test_run_eval_input_errors(tmp_path):
  root, det_dir = _tree_and_detections(tmp_path)
  with pytest.raises(ValueError, match='--det_dir=.*nowhere is not a folder'):
    voc_eval.run_eval(root, '2007', 'test', str(tmp_path / 'nowhere'), class_names='cat')
  with pytest.raises(ValueError, match='--voc_root=.*absent is not a folder'):
    voc_eval.run_eval(str(tmp_path / 'absent'), '2007', 'test', det_dir, class_names='cat')
  with pytest.raises(ValueError, match='No split file VOC2007/ImageSets/Main/val.txt'):
    voc_eval.run_eval(root, '2007', 'val', det_dir, class_names='cat')
  with pytest.raises(ValueError, match='holds no comp4_det_test_<class>.txt file for any of '
                                       'the 1 classes'):
    voc_eval.run_eval(root, '2007', 'test', det_dir, class_names='horse')


def test_command_line(tmp_path):
  root, det_dir = _tree_and_detections(tmp_path)
  json_path = str(tmp_path / 'map.json')
  command = [sys.executable, os.path.join(REPO, 'voc_eval.py'), '--voc_root=' + root,
             '--year=2007', '--split=test', '--det_dir=' + det_dir, '--class_names=cat,dog',
             '--json_output=' + json_path]
  done = subprocess.run(command, capture_output=True, text=True, cwd=str(tmp_path))
  assert done.returncode == 0, done.stderr
  assert done.stdout.splitlines()[1].split() == ['cat', '0.8485', '2', '4']
  with open(json_path) as f:
    assert json.load(f)['ap']['dog'] is None
  command[5] = '--det_dir=' + str(tmp_path / 'nowhere')
  failed = subprocess.run(command, capture_output=True, text=True, cwd=str(tmp_path))
  assert failed.returncode == 1
  assert failed.stderr.strip().startswith('Error: --det_dir=')
  assert len(failed.stderr.strip().splitlines()) == 1


def test_evaluator_does_not_import_tensorflow():
  code = ('import sys, voc_eval, utility.voc_metric; '
          'sys.exit(int("tensorflow" in sys.modules))')
  assert subprocess.run([sys.executable, '-c', code], cwd=REPO).returncode == 0
