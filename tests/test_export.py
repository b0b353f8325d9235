import dataclasses
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from dataset import input_fn
from net import export
from net import model_fn
from tests import graph_test_util
from tests.conftest import TINY_CLASSES, tiny_config, train_tiny
from utility import checkpoint
from utility import boxes as box_utils
from utility import config as config_lib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREDICTION_KEYS = ('detection_boxes', 'detection_scores', 'detection_classes', 'num_detections')


@pytest.fixture(scope='module')
def trained_model_dir(tiny_records, tmp_path_factory):
  """A tiny model trained for one step (checkpoint + ssd_config.json, as train_ssd.py leaves)."""
  model_dir = str(tmp_path_factory.mktemp('export_model'))
  train_tiny(tiny_config(max_number_of_steps=1), tiny_records['records'], model_dir)
  return model_dir


def _val_records(records_dir):
  """[(filename, encoded JPEG bytes, height, width)] of the val shards, in eval input order."""
  rows = []
  for path in input_fn.list_shards(os.path.join(records_dir, 'val-*')):
    for record in tf.compat.v1.io.tf_record_iterator(path):
      feature = tf.train.Example.FromString(record).features.feature
      rows.append((feature['image/filename'].bytes_list.value[0],
                   feature['image/encoded'].bytes_list.value[0],
                   feature['image/height'].int64_list.value[0],
                   feature['image/width'].int64_list.value[0]))
  return rows


def _estimator_predictions(model_dir, records_dir, num_images, **postprocess):
  """Estimator.predict through the eval input (decode_jpeg + eval resize), batch 2."""
  config = config_lib.load(model_dir)
  config = dataclasses.replace(config, postprocess=dataclasses.replace(config.postprocess,
                                                                       **postprocess))
  estimator = tf.estimator.Estimator(model_fn=model_fn.make_model_fn(config), model_dir=model_dir)
  predictions = estimator.predict(
      input_fn.make_eval_input_fn(os.path.join(records_dir, 'val-*'), config, batch_size=2))
  return [next(predictions) for _ in range(num_images)]


_FRESH_PROCESS_SCRIPT = textwrap.dedent('''
    import sys
    import numpy as np
    import tensorflow as tf
    export_dir, output_path = sys.argv[1:3]
    encoded = [open(path, 'rb').read() for path in sys.argv[3:]]
    signature = tf.saved_model.load(export_dir).signatures['serving_default']
    outputs = signature(encoded_images=tf.constant(encoded))
    project = sorted(m for m in sys.modules if m.split('.')[0] in
                     ('net', 'utility', 'dataset', 'preprocessing'))
    assert not project, project
    arrays = {key: value.numpy() for key, value in outputs.items()}
    np.savez(output_path, **{key: value.astype(bytes) if value.dtype == object else value
                             for key, value in arrays.items()})
''')


def _run_in_fresh_process(export_dir, encoded_images, tmp_path):
  """Loads the SavedModel in a new python with only TensorFlow importable from the cwd."""
  image_paths = []
  for i, encoded in enumerate(encoded_images):
    image_paths.append(str(tmp_path / ('image%d.jpg' % i)))
    with open(image_paths[-1], 'wb') as f:
      f.write(encoded)
  output_path = str(tmp_path / 'outputs.npz')
  script = tmp_path / 'load_saved_model.py'
  script.write_text(_FRESH_PROCESS_SCRIPT)
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  subprocess.run([sys.executable, str(script), export_dir, output_path] + image_paths,
                 check=True, cwd=str(tmp_path), env=env, timeout=300)
  with np.load(output_path) as outputs:
    return dict(outputs)


def test_pixel_boxes_are_the_exact_inverse_of_the_converter_mapping():
  # Two images of 200x100 and 50x40 (height x width): boxes from 1-based VOC pixels.
  pixels = np.array([[[1, 1, 100, 200], [11, 21, 60, 120]], [[5, 3, 40, 50], [1, 1, 1, 1]]],
                    np.float64)  # [xmin, ymin, xmax, ymax]
  heights, widths = np.array([200, 50], np.int32), np.array([100, 40], np.int32)
  normalized = np.stack(box_utils.voc_pixels_to_normalized(
      *np.moveaxis(pixels, -1, 0), widths[:, None], heights[:, None]), axis=-1)
  np.testing.assert_allclose(normalized[0, 0], [0, 0, 1, 1])
  result = graph_test_util.execute(box_utils.batch_normalized_to_voc_pixels,
                                   normalized.astype(np.float32), heights, widths)
  assert result.dtype == np.float32
  np.testing.assert_allclose(result, pixels, atol=1e-4)
  np.testing.assert_allclose(
      result, box_utils.normalized_to_voc_pixels(normalized, heights[:, None], widths[:, None]),
      atol=1e-4)


def test_saved_model_in_a_fresh_process_matches_estimator_predict(tiny_records, trained_model_dir,
                                                                   tmp_path):
  export_dir = str(tmp_path / 'exported')
  # A postprocess flag overrides the trained settings in the export (200 -> 50 per image).
  subprocess.run([sys.executable, os.path.join(REPO_ROOT, 'export_ssd.py'),
                  '--model_dir=' + trained_model_dir, '--export_dir=' + export_dir,
                  '--max_detections_per_image=50'], check=True, cwd=REPO_ROOT, timeout=300)
  assert sorted(os.listdir(tmp_path)) == ['exported']  # no temp folder left next to it
  records = _val_records(tiny_records['records'])[:2]
  assert records[0][2:] != records[1][2:], 'the test needs two image sizes'
  expected = _estimator_predictions(trained_model_dir, tiny_records['records'], 2,
                                    max_detections_per_image=50)
  assert [p['filename'] for p in expected] == [r[0] for r in records]

  served = _run_in_fresh_process(export_dir, [r[1] for r in records], tmp_path)

  for key in PREDICTION_KEYS:
    np.testing.assert_allclose(served[key], np.stack([p[key] for p in expected]), atol=1e-4,
                               err_msg=key)
  assert served['detection_boxes'].shape == (2, 50, 4)
  assert served['detection_classes'].dtype == np.int32
  assert (served['num_detections'] > 0).all()
  for i, (_, _, height, width) in enumerate(records):
    count = served['num_detections'][i]
    names = ('background',) + TINY_CLASSES
    assert list(served['detection_class_names'][i]) == [
        names[c].encode() for c in served['detection_classes'][i]]
    assert set(served['detection_class_names'][i, count:]) <= {b'background'}
    np.testing.assert_allclose(
        served['detection_boxes_pixels'][i, :count],
        box_utils.normalized_to_voc_pixels(served['detection_boxes'][i, :count], height, width),
        atol=1e-4)
    assert (served['detection_boxes_pixels'][i, count:] == 0).all()


def test_export_is_atomic_and_refuses_to_replace_without_overwrite(tmp_path, monkeypatch):
  export_dir = tmp_path / 'export'

  def failing_write(unused_config, unused_checkpoint, path):
    os.makedirs(path)
    with open(os.path.join(path, 'saved_model.pb'), 'wb') as f:
      f.write(b'partial')
    raise RuntimeError('disk full')

  monkeypatch.setattr(export, '_write_saved_model', failing_write)
  with pytest.raises(RuntimeError, match='disk full'):
    export.export_saved_model(tiny_config(), 'ckpt', str(export_dir))
  assert os.listdir(tmp_path) == []  # no export, no temp folder

  def marker_write(unused_config, checkpoint, path):
    os.makedirs(path)
    with open(os.path.join(path, 'saved_model.pb'), 'w') as f:
      f.write(checkpoint)

  monkeypatch.setattr(export, '_write_saved_model', marker_write)
  export.export_saved_model(tiny_config(), 'first', str(export_dir))
  with pytest.raises(FileExistsError, match='export already exists: pass --overwrite'):
    export.export_saved_model(tiny_config(), 'second', str(export_dir))
  assert (export_dir / 'saved_model.pb').read_text() == 'first'
  export.export_saved_model(tiny_config(), 'second', str(export_dir), overwrite=True)
  assert (export_dir / 'saved_model.pb').read_text() == 'second'
  assert sorted(os.listdir(tmp_path)) == ['export']


def test_serving_config_is_nhwc_unless_asked(tmp_path):
  nchw = export.serving_config(
      config_lib.SSDConfig(model=config_lib.ModelConfig(data_format='NCHW')))
  assert nchw.model.data_format == 'NHWC'
  assert export.serving_config(nchw, 'channels_first').model.data_format == 'NCHW'
  with pytest.raises(ValueError, match='holds no checkpoint: train a model into it'):
    checkpoint.latest_checkpoint(str(tmp_path))
