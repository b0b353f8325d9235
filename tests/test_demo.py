"""`make demo`, shortened (tiny dataset, a few dozen steps): every stage connects."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _map(out, checkpoint):
  json_path = os.path.join(out, 'map_%s.json' % os.path.basename(checkpoint))
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, 'eval_ssd.py'), '--data_dir=' + out + '/records',
       '--model_dir=' + out + '/model', '--checkpoint_path=' + checkpoint,
       '--det_dir=' + out + '/det_check', '--json_output=' + json_path],
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  return json.load(open(json_path))['mAP']


# Each kernel path runs one of the two quick recipes (make demo's on a CPU, the MobileNet, and
# with GPU=1, the thin VGG16), so both run end to end on every machine.
RECIPES = {'0': ('configs/quick.flags', '0.0625'), '1': ('configs/quick_mobilenet.flags', '0.25')}


def test_make_demo_shortened(tmp_path, kernel_path):
  out = str(tmp_path / 'demo')
  flagfile, width = RECIPES[kernel_path]
  result = subprocess.run(
      ['make', '-C', REPO, 'demo', 'DEMO_DIR=' + out, 'DEMO_TRAINVAL=40', 'DEMO_TEST=10',
       'DEMO_FLAGS=' + flagfile,
       'DEMO_DATA_FLAGS=--classes=aeroplane,bicycle,bird --min_size=120 --max_size=200',
       # The quick recipe's time budget, with one so short that the plan is the timed
       # warm-up itself: 40 steps at the recipe's learning rate.
       'DEMO_TRAIN_FLAGS=--train_time_budget_minutes=0.01 --warmup_steps=40 '
       '--warmup_learning_rate=0.004 --train_image_size=160 --width_multiplier=' + width + ' '
       '--batch_size=8 --save_checkpoints_steps=40'],
      capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
  assert '==> [3/6] Training the quick SSD (%s)' % flagfile in result.stdout
  # Every stage announced itself and the closing message says where things are.
  for stage in range(1, 7):
    assert '==> [%d/6]' % stage in result.stdout
  assert 'TensorBoard:' in result.stdout
  # Shards, checkpoint, result files, mAP, SavedModel, drawn images.
  records = sorted(os.listdir(os.path.join(out, 'records')))
  assert records[:2] == ['conversion_summary.json', 'train-00000-of-00004']
  assert 'val-00001-of-00002' in records
  assert os.path.exists(os.path.join(out, 'model', 'model.ckpt-40.index'))
  plan = json.load(open(os.path.join(out, 'model', 'time_budget.json')))
  assert (plan['max_number_of_steps'], plan['planned_at_step'], plan['final']) == (40, 40, True)
  assert 'Time budget 0.01 minutes, final plan at step 40 (' in result.stderr
  for name in ('aeroplane', 'bicycle', 'bird'):
    assert os.path.getsize(os.path.join(out, 'detections', 'comp4_det_test_%s.txt' % name)) > 0
  summary = json.load(open(os.path.join(out, 'map.json')))
  # The converter keeps the 20 VOC names; classes without ground truth are n/a (None).
  assert len(summary['ap']) == 20 and summary['metric'] == 'voc07'
  assert {name for name, ap in summary['ap'].items() if ap is not None} == {
      'aeroplane', 'bicycle', 'bird'}
  assert 'mAP' in result.stdout
  assert os.path.exists(os.path.join(out, 'saved_model', 'saved_model.pb'))
  drawn = sorted(os.listdir(os.path.join(out, 'drawn')))
  samples = sorted(os.listdir(os.path.join(out, 'sample_images')))
  assert drawn == samples and len(drawn) == 8
  image = cv2.imread(os.path.join(out, 'drawn', drawn[0]))
  assert image is not None and image.shape == cv2.imread(
      os.path.join(out, 'sample_images', drawn[0])).shape
  # The SavedModel reloads in a fresh process that only imports TensorFlow.
  probe = subprocess.run(
      [sys.executable, '-c',
       'import sys, tensorflow as tf\n'
       'm = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]\n'
       'out = m(encoded_images=tf.constant([open(sys.argv[2], "rb").read()]))\n'
       'print(int(out["num_detections"][0]), out["detection_boxes"].shape)',
       os.path.join(out, 'saved_model'), os.path.join(out, 'sample_images', samples[0])],
      capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
  assert probe.returncode == 0, probe.stderr[-2000:]
  assert probe.stdout.strip().endswith('(1, 200, 4)')
  # Learning happened: the trained checkpoint beats the initial one.
  model_dir = os.path.join(out, 'model')
  # (map.json is make demo's own evaluation of the last checkpoint, model.ckpt-40.)
  trained, initial = summary['mAP'], _map(out, model_dir + '/model.ckpt-0')
  assert trained > initial, (trained, initial)
  assert np.isfinite(trained)


def test_make_demo_trains_the_mobilenet_recipe_on_a_cpu_and_the_vgg16_on_a_gpu():
  """Without DEMO_FLAGS, make demo trains configs/quick_mobilenet.flags; GPU=1 the thin VGG16."""
  commands = {}
  for gpu in ('', '1'):
    dry_run = subprocess.run(['make', '-C', REPO, '-n', 'demo', 'DEMO_DIR=unused', 'GPU=' + gpu],
                             capture_output=True, text=True, timeout=120)
    assert dry_run.returncode == 0, dry_run.stderr[-2000:]
    commands[gpu] = [line for line in dry_run.stdout.splitlines() if 'train_ssd.py' in line]
  assert len(commands['']) == 1 and len(commands['1']) == 1
  assert commands[''][0].startswith('.venv/bin/python train_ssd.py '
                                    '--flagfile=configs/quick_mobilenet.flags ')
  assert commands['1'][0].startswith('.venv-gpu/bin/python train_ssd.py '
                                     '--flagfile=configs/quick.flags ')
