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
from net import model_spec
from net import model_fn
from tests import graph_test_util
from tests.conftest import TINY_CLASSES, tiny_config, train_tiny
from utility import checkpoint
from utility import boxes as box_utils
from utility import config as config_lib
from utility import tflite_postprocess

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
      input_fn.make_eval_input_fn(os.path.join(records_dir, 'val-*'), config,
                                  model_spec.model_inputs(config.model), batch_size=2))
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
  run = subprocess.run([sys.executable, os.path.join(REPO_ROOT, 'export_ssd.py'),
                        '--model_dir=' + trained_model_dir, '--export_dir=' + export_dir,
                        '--max_detections_per_image=50'], check=True, cwd=REPO_ROOT,
                       timeout=300, capture_output=True, text=True)
  assert 'export: 2/2 stages (100%)' in run.stderr and 'wrote ' + export_dir in run.stderr
  assert ('to %s: ' % export_dir) in run.stdout and ' MB in 0m' in run.stdout
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


def test_export_conv_algorithm_flag_overrides_the_trained_setting(trained_model_dir, tmp_path):
  run = subprocess.run([sys.executable, os.path.join(REPO_ROOT, 'export_ssd.py'),
                        '--model_dir=' + trained_model_dir, '--export_dir=' + str(tmp_path / 'x'),
                        '--conv_algorithm=winograd', '--data_format=NCHW'], cwd=REPO_ROOT,
                       timeout=300, capture_output=True, text=True)
  assert run.returncode == 1
  assert ('--conv_algorithm=winograd cannot run with --data_format=NCHW (it computes NHWC only)'
          in run.stderr)
  assert not os.path.exists(tmp_path / 'x')


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
  trained = config_lib.SSDConfig(model=config_lib.ModelConfig(data_format='NCHW'))
  assert export.serving_config(trained).model.data_format == 'NHWC'
  nchw = export.serving_config(trained, 'channels_first').model
  # Winograd computes NHWC only, so conv_algorithm 'auto' serves NCHW with direct convolutions.
  assert (nchw.data_format, nchw.conv_algorithm) == ('NCHW', 'direct')
  with pytest.raises(ValueError, match='holds no checkpoint: train a model into it'):
    checkpoint.latest_checkpoint(str(tmp_path))


def _preprocessed_image(encoded, model_config):
  """float32 [1, size, size, 3]: what the SavedModel's network sees for this encoded image."""
  with tf.Graph().as_default():
    images, _, _ = export.decode_and_preprocess(tf.constant([encoded]), model_config)
    with tf.compat.v1.Session() as session:
      return session.run(images)


def _tf_network_outputs(images, ssd_config, checkpoint_path):
  """The .tflite's outputs computed by the TF graph (export.build_tflite_network)."""
  with tf.Graph().as_default():
    outputs = export.build_tflite_network(tf.constant(images), ssd_config.model)
    with tf.compat.v1.Session() as session:
      export.restore_variables(session, checkpoint_path)
      return session.run(outputs)


def _saved_model_outputs(export_dir, encoded):
  with tf.Graph().as_default(), tf.compat.v1.Session() as session:
    meta_graph = tf.compat.v1.saved_model.loader.load(session, ['serve'], export_dir)
    signature = meta_graph.signature_def[export.SIGNATURE_KEY]
    return session.run({key: value.name for key, value in signature.outputs.items()},
                       {signature.inputs[export.INPUT_KEY].name: [encoded]})


def _run_tflite(path, images):
  """({output name: array} of the .tflite on images, its input details)."""
  interpreter = tf.lite.Interpreter(model_path=path)
  interpreter.allocate_tensors()
  (input_details,) = interpreter.get_input_details()
  interpreter.set_tensor(input_details['index'], images)
  interpreter.invoke()
  return ({d['name']: interpreter.get_tensor(d['index'])
           for d in interpreter.get_output_details()}, input_details)


def _assert_same_detections(served, detections, atol):
  """The same (class, box, score) rows for image 0; near-equal scores may swap places."""
  count = int(served['num_detections'][0])
  assert detections['num_detections'].tolist() == [count]
  classes, scores, boxes = (detections[key][0, :count] for key in ('classes', 'scores', 'boxes'))
  unmatched = np.ones(count, bool)
  for i in range(count):
    candidates = np.flatnonzero(
        unmatched & (classes == served['detection_classes'][0, i]) &
        (np.abs(scores - served['detection_scores'][0, i]) < atol) &
        (np.abs(boxes - served['detection_boxes'][0, i]).max(-1) < atol))
    assert candidates.size, 'SavedModel detection %d has no TFLite counterpart' % i
    unmatched[candidates[0]] = False
  assert not detections['scores'][0, count:].any() and not detections['classes'][0, count:].any()


def test_tflite_matches_the_tf_graph_and_the_saved_model_detections(tiny_records,
                                                                    trained_model_dir, tmp_path):
  export_dir = str(tmp_path / 'exported')
  # Caps above what one image fills: which of two scores 1e-6 apart (TFLite vs TF kernels)
  # ranks first cannot move a detection across a cut-off.
  subprocess.run([sys.executable, os.path.join(REPO_ROOT, 'export_ssd.py'),
                  '--model_dir=' + trained_model_dir, '--export_dir=' + export_dir, '--tflite',
                  '--score_threshold=0.05', '--pre_nms_top_k=5000',
                  '--max_detections_per_class=5000', '--max_detections_per_image=5000'],
                 check=True, cwd=REPO_ROOT, timeout=300)
  folder = os.path.join(export_dir, export.TFLITE_SUBDIR)
  assert sorted(os.listdir(export_dir)) == ['saved_model.pb', 'tflite', 'variables']
  assert sorted(os.listdir(folder)) == ['anchors.npy', 'postprocess.json', 'ssd.tflite']
  config = export.tflite_config(config_lib.load(trained_model_dir))
  settings, anchors = tflite_postprocess.load_export(folder)
  assert (settings.image_size, settings.class_names, settings.prior_variances) == (
      160, TINY_CLASSES, (0.1, 0.1, 0.2, 0.2))
  assert (settings.score_threshold, settings.max_detections_per_image) == (0.05, 5000)
  num_anchors = model_spec.num_anchors(config.model)
  np.testing.assert_array_equal(
      anchors, graph_test_util.execute(lambda: model_spec.generate_anchors(config.model)))

  encoded = _val_records(tiny_records['records'])[0][1]
  images = _preprocessed_image(encoded, config.model)
  outputs, input_details = _run_tflite(os.path.join(folder, 'ssd.tflite'), images)
  assert input_details['name'] == 'images' and input_details['dtype'] == np.float32
  assert input_details['shape'].tolist() == [1, 160, 160, 3]
  assert outputs['box_offsets'].shape == (1, num_anchors, 4)
  assert outputs['class_scores'].shape == (1, num_anchors, len(TINY_CLASSES) + 1)
  expected = _tf_network_outputs(images, config, checkpoint.latest_checkpoint(trained_model_dir))
  np.testing.assert_allclose(outputs['box_offsets'], expected['box_offsets'], atol=1e-4)
  np.testing.assert_allclose(outputs['class_scores'], expected['class_scores'], atol=1e-5)
  np.testing.assert_allclose(outputs['class_scores'].sum(-1), 1.0, atol=1e-5)

  detections = tflite_postprocess.postprocess(outputs['box_offsets'], outputs['class_scores'],
                                              anchors, settings)
  served = _saved_model_outputs(export_dir, encoded)
  assert served['num_detections'][0] > 10
  _assert_same_detections(served, detections, atol=1e-4)


def test_tflite_export_writes_its_files_atomically(tmp_path, monkeypatch):
  def failing_convert(unused_model_config, unused_checkpoint):
    raise RuntimeError('converter crashed')

  def marker_write(unused_config, unused_checkpoint, path):
    os.makedirs(path)

  monkeypatch.setattr(export, '_write_saved_model', marker_write)
  monkeypatch.setattr(export, '_convert_to_tflite', failing_convert)
  with pytest.raises(RuntimeError, match='converter crashed'):
    export.export_saved_model(tiny_config(), 'ckpt', str(tmp_path / 'export'), tflite=True)
  assert os.listdir(tmp_path) == []  # no SavedModel without its TFLite files, no temp folder

  monkeypatch.setattr(export, '_convert_to_tflite', lambda config, checkpoint: b'flatbuffer')
  path = export.export_tflite(tiny_config(), 'ckpt', str(tmp_path / 'tflite'))
  assert path == str(tmp_path / 'tflite' / 'ssd.tflite')
  assert sorted(os.listdir(tmp_path / 'tflite')) == ['anchors.npy', 'postprocess.json',
                                                     'ssd.tflite']
  assert (tmp_path / 'tflite' / 'ssd.tflite').read_bytes() == b'flatbuffer'
  settings, anchors = tflite_postprocess.load_export(str(tmp_path / 'tflite'))
  assert anchors.shape == (model_spec.num_anchors(tiny_config().model), 4)
  assert settings == export.tflite_settings(tiny_config())


def test_tflite_config_is_float32_nhwc():
  trained = config_lib.SSDConfig(model=config_lib.ModelConfig(data_format='NCHW',
                                                              compute_dtype='bfloat16'))
  model = export.tflite_config(trained).model
  assert (model.data_format, model.compute_dtype) == ('NHWC', 'float32')
  with pytest.raises(ValueError, match='--tflite decodes boxes with the center_size box coder '
                     'only; this model uses --box_coder=other'):
    export.export_tflite(config_lib.override_model(trained, box_coder='other'), 'ckpt',
                         'unused')
