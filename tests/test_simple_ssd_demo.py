import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

from net import detector as detector_lib
from net import export
from net import model_fn
from tests.conftest import TINY_CLASSES, same_kernels_env, tiny_config
from utility import checkpoint
from utility import config as config_lib
from utility import detection_demo
from utility import draw

tf1 = tf.compat.v1
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
  """A tiny model's initial checkpoint (seeded) with its ssd_config.json."""
  path = str(tmp_path_factory.mktemp('demo_model'))
  config = tiny_config()
  with tf.Graph().as_default():
    tf1.set_random_seed(1)
    model_fn.ssd_model_fn({'image': tf.zeros([1, 160, 160, 3])}, None,
                          tf.estimator.ModeKeys.PREDICT, None, config)
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      tf1.train.Saver().save(session, os.path.join(path, 'model.ckpt'), global_step=0)
  config_lib.save(config, path)
  return path


def _synthetic_image(height, width, seed):
  """uint8 [height, width, 3] BGR: a smooth gradient with two filled rectangles."""
  rng = np.random.RandomState(seed)
  y, x = np.mgrid[0:height, 0:width]
  image = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (height + width)],
                   axis=-1).astype(np.uint8)
  for _ in range(2):
    y0, x0 = rng.randint(0, height // 2), rng.randint(0, width // 2)
    cv2.rectangle(image, (x0, y0), (x0 + width // 3, y0 + height // 3),
                  tuple(int(c) for c in rng.randint(0, 256, 3)), cv2.FILLED)
  return image


@pytest.fixture()
def input_dir(tmp_path):
  """Two good images of different sizes and formats, two unreadable '.jpg', one text file."""
  folder = tmp_path / 'input'
  folder.mkdir()
  cv2.imwrite(str(folder / 'a_street.jpg'), _synthetic_image(90, 120, 0))
  cv2.imwrite(str(folder / 'b_room.png'), _synthetic_image(110, 70, 1))
  (folder / 'c_empty.jpg').write_bytes(b'')
  (folder / 'd_notes.jpg').write_text('not an image\n')
  (folder / 'readme.txt').write_text('ignored: not an image extension\n')
  return folder


def _threshold_between(scores):
  """(count, threshold) with exactly count >= 2 of the descending scores above threshold.

  The gap is kept clear of float32 rounding (the script parses the flag as a Python float).
  """
  count = next(k for k in range(2, len(scores)) if scores[k - 1] - scores[k] > 1e-5)
  return count, float(scores[count - 1] + scores[count]) / 2.0


def _expected_drawing(path, outputs, count):
  """The image drawn with the first `count` detections, straight through utility/draw.py."""
  image = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
  return draw.draw_detections(image, outputs['detection_boxes'][0, :count],
                              outputs['detection_classes'][0, :count],
                              outputs['detection_scores'][0, :count], class_names=TINY_CLASSES)


def test_demo_script_draws_exactly_the_detections_above_the_threshold(model_dir, input_dir,
                                                                      tmp_path):
  first = str(input_dir / 'a_street.jpg')
  with detector_lib.Detector.from_model_dir(model_dir) as detector:
    with open(first, 'rb') as f:
      outputs = detector.detect([f.read()])
  num_drawn, threshold = _threshold_between(outputs['detection_scores'][0])
  output_dir = tmp_path / 'output'

  run = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, 'simple_ssd_demo.py'), '--model_dir=' + model_dir,
       '--input=%s' % input_dir, '--output=%s' % output_dir, '--score_threshold=%r' % threshold],
      cwd=REPO_ROOT, env=same_kernels_env(), capture_output=True, text=True, timeout=300)

  assert run.returncode == 0, run.stderr
  assert sorted(os.listdir(output_dir)) == ['a_street.jpg', 'b_room.png']
  for name in ('c_empty.jpg', 'd_notes.jpg'):
    assert 'Skipping %s' % (input_dir / name) in run.stderr
  lines = [line for line in run.stdout.splitlines() if line.startswith('a_street.jpg ')]
  names = ('background',) + TINY_CLASSES
  assert lines == ['a_street.jpg %s %.3f %.1f %.1f %.1f %.1f' % (
      (names[outputs['detection_classes'][0, i]], outputs['detection_scores'][0, i])
      + tuple(outputs['detection_boxes_pixels'][0, i])) for i in range(num_drawn)]
  assert 'Drew 2 image(s)' in run.stdout and 'skipped 2 unreadable' in run.stdout
  written = cv2.imread(str(output_dir / 'a_street.jpg'))
  ok, expected_jpeg = cv2.imencode('.jpg', _expected_drawing(first, outputs, num_drawn))
  assert ok
  np.testing.assert_array_equal(written, cv2.imdecode(expected_jpeg, cv2.IMREAD_COLOR))
  # One box more or less would change the drawing.
  for count in (num_drawn - 1, num_drawn + 1):
    assert not np.array_equal(_expected_drawing(first, outputs, num_drawn),
                              _expected_drawing(first, outputs, count))


def test_saved_model_and_model_dir_give_the_same_drawings(model_dir, input_dir, tmp_path, caplog):
  saved_model = export.export_saved_model(
      export.serving_config(config_lib.load(model_dir)),
      checkpoint.latest_checkpoint(model_dir), str(tmp_path / 'export'))
  paths = detection_demo.list_images(str(input_dir))
  assert [os.path.basename(p) for p in paths] == ['a_street.jpg', 'b_room.png', 'c_empty.jpg',
                                                  'd_notes.jpg']
  runs = {}
  for source in ('model_dir', 'saved_model'):
    with detector_lib.Detector.create(**{'model_dir': model_dir} if source == 'model_dir' else
                                      {'saved_model_dir': saved_model}) as detector:
      caplog.clear()
      runs[source] = detection_demo.run(detector.detect, paths, str(tmp_path / source), 0.2)
    assert runs[source][1] == paths[2:]
    assert [r.getMessage().split(':')[0] for r in caplog.records] == [
        'Skipping %s' % p for p in paths[2:]]
  for (path, from_dir), (_, from_export) in zip(runs['model_dir'][0], runs['saved_model'][0]):
    assert from_dir.names == from_export.names and len(from_dir.names) > 0
    np.testing.assert_array_equal(from_dir.boxes_pixels, from_export.boxes_pixels)
    assert (from_dir.scores > 0.2).all()
    name = os.path.basename(path)
    with open(os.path.join(tmp_path, 'model_dir', name), 'rb') as a, \
        open(os.path.join(tmp_path, 'saved_model', name), 'rb') as b:
      assert a.read() == b.read()


def test_errors_name_the_input_or_folder(model_dir, input_dir, tmp_path):
  with pytest.raises(FileNotFoundError, match='--input=.*missing does not exist'):
    detection_demo.list_images(str(tmp_path / 'missing'))
  with pytest.raises(ValueError, match='readme.txt is not a .jpg/.jpeg/.png/.bmp image'):
    detection_demo.list_images(str(input_dir / 'readme.txt'))
  with pytest.raises(ValueError, match='holds the input images: choose another folder'):
    detection_demo.run(lambda images: None, [str(input_dir / 'a_street.jpg')], str(input_dir),
                       0.5)
  with pytest.raises(FileNotFoundError, match='holds no saved_model.pb'):
    detector_lib.Detector.from_saved_model(model_dir)
  with pytest.raises(ValueError, match='either --model_dir or --saved_model, not both'):
    detector_lib.Detector.create(model_dir, model_dir)
  # Bytes OpenCV might accept but TensorFlow cannot decode fail alone, as a ValueError.
  with detector_lib.Detector.from_model_dir(model_dir) as detector:
    with pytest.raises(ValueError, match='Could not decode the image'):
      detector.detect([b'GIF89a truncated'])
    assert detector.detect([cv2.imencode('.png', _synthetic_image(20, 30, 2))[1].tobytes()])[
        'detection_boxes'].shape == (1, 200, 4)
