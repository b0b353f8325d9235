"""SavedModel export for serving: encoded image bytes in, detections out, NMS inside.

The ``serving_default`` signature (also what ``build_serving_graph`` returns in-process):

  input  'encoded_images': string [batch], JPEG or PNG bytes (GIF/BMP decode too), any size.
  outputs, detections sorted by descending score, zero padded after num_detections:
    'detection_boxes': float32 [batch, max_detections, 4] normalized [ymin, xmin, ymax, xmax];
    'detection_boxes_pixels': float32 [batch, max_detections, 4] 1-based VOC pixels
      [xmin, ymin, xmax, ymax] of each ORIGINAL image (``normalized_to_voc_pixels``);
    'detection_classes': int32 [batch, max_detections], labels 1..num_classes - 1 (0 = padding);
    'detection_class_names': string [batch, max_detections] ('background' for padding);
    'detection_scores': float32 [batch, max_detections];
    'num_detections': int32 [batch].

Each image is decoded (3 channels) and resized with the evaluation preprocessing
(``preprocess_for_eval``: bilinear warp to the model's square input, backbone mean), exactly
as the eval input_fn does for the TFRecords, then the model_fn's PREDICT path runs (network,
box decoding, per-class NMS with the model's postprocess settings). So for the same JPEG the
SavedModel returns the Estimator's predictions.

Why the graph is built here and saved with ``tf.compat.v1.saved_model.Builder`` rather than
with ``Estimator.export_saved_model``: the signature needs outputs the model_fn's prediction
dict does not have (pixel boxes of the original sizes, class names), the demo runs the very
same graph in-process (``build_serving_graph``), and the SavedModel is written into a folder
we name, which makes the atomic rename simple. The Estimator's export would add a timestamped
sub-folder and a second graph-building path for the same result.

TFLite (``export_ssd.py --tflite``, ``export_tflite``): ``<export_dir>/tflite/`` gets the
network alone as ``ssd.tflite``, float32 'images' [1, image_size, image_size, 3] (resized and
normalized, as ``decode_and_preprocess`` returns) in, raw 'box_offsets' [1, num_anchors, 4] and
softmax 'class_scores' [1, num_anchors, num_classes] out, with ``anchors.npy`` and
``postprocess.json`` beside it; ``utility/tflite_postprocess.py`` (numpy) decodes and runs the
per-class NMS outside TFLite, giving the SavedModel's detections. The TFLite graph is always
float32 NHWC (TFLite has no bfloat16 compute and its convolutions are NHWC), frozen from the
checkpoint with ``tf.compat.v1.lite.TFLiteConverter.from_session``. Why not TFLite's own
``TFLite_Detection_PostProcess`` op: it computes another detection output than the model's (no
clipping of the decoded boxes and no dropping of boxes clipped to nothing, no bound on the box
scale, a score equal to the threshold passes, ties in no fixed order, and by default one NMS
over each anchor's best class), so the .tflite's detections would differ from the SavedModel's
and eval_ssd.py's; and the converter takes that custom op only spliced into the graph by hand.

Atomic output: the SavedModel is written into ``.tmp-<name>-XXXX/`` next to ``export_dir`` and
renamed into place once complete, so ``export_dir`` is either absent, the previous export, or
the complete new one; a failed export leaves nothing behind. An existing ``export_dir`` is only
replaced with ``overwrite=True``. The ``tflite/`` folder is written inside the new SavedModel
folder before the rename (each file through ``utility.file_io.atomic_write``), so it is part of
the same all-or-nothing export. For TF Serving, export into a numbered version folder
(``--export_dir=models/ssd/1``).
"""

import dataclasses
import io
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf
from absl import logging

from net import kernel_support
from net import model_fn as model_fn_lib
from net import model_spec
from preprocessing import ssd_preprocessing
from utility import boxes as box_lib
from utility import config as config_lib
from utility import file_io
from utility import labels
from utility import progress
from utility import tflite_postprocess

tf1 = tf.compat.v1

SIGNATURE_KEY = tf1.saved_model.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY
INPUT_KEY = 'encoded_images'
OUTPUT_KEYS = ('detection_boxes', 'detection_boxes_pixels', 'detection_classes',
               'detection_class_names', 'detection_scores', 'num_detections')
# CPU serving: NHWC is the only layout the CPU kernels run (docs/RECIPE.md, "Network").
SERVING_DATA_FORMAT = 'NHWC'
TFLITE_SUBDIR = 'tflite'


def serving_config(ssd_config, data_format=''):
  """The trained settings with the layout to serve in (NHWC unless data_format is given).

  compute_dtype 'auto' becomes float32: a SavedModel must run on any machine it is copied to,
  and the weights are float32 whatever trained them. An explicit bfloat16 is kept.
  conv_algorithm 'auto' is chosen for this machine (net/kernel_support.py): a SavedModel
  written where oneDNN is on computes with Winograd, which runs everywhere and is slower only
  with TensorFlow's default CPU kernels (export with --conv_algorithm=direct for those).
  """
  changes = {'data_format': data_format or SERVING_DATA_FORMAT}
  if ssd_config.model.compute_dtype == 'auto':
    changes['compute_dtype'] = 'float32'
  served = config_lib.override_model(ssd_config, **changes)
  model = served.model
  algorithm, reason = kernel_support.choose_conv_algorithm(
      model.conv_algorithm, model.data_format, model.compute_dtype,
      kernel_support.current_machine())
  if model.conv_algorithm == 'auto':
    logging.info('Serving graph: %s', reason)
  return config_lib.override_model(served, conv_algorithm=algorithm)


def default_export_dir(model_dir):
  return os.path.join(model_dir, 'export')


def decode_and_preprocess(encoded_images, model_config):
  """Decodes a batch of encoded images and applies the evaluation preprocessing.

  Args:
    encoded_images: string [batch], JPEG/PNG bytes of images of any size.
    model_config: utility.config.ModelConfig (input size).

  Returns:
    (images float32 [batch, image_size, image_size, 3] in the backbone's image convention,
     heights int32 [batch], widths int32 [batch]: each original image's size).
  """
  size = model_config.image_size

  def decode_one(encoded):
    # expand_animations=False: a GIF gives its first frame, so every image is [h, w, 3].
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return (ssd_preprocessing.preprocess_for_eval(image, (size, size),
                                                 model_spec.image_convention(model_config)),
            tf.shape(image)[:2])

  # Graph ops only: no AutoGraph rewriting of the preprocessing.
  images, image_sizes = tf.map_fn(
      tf.autograph.experimental.do_not_convert(decode_one), encoded_images,
      fn_output_signature=(tf.TensorSpec([size, size, 3], tf.float32),
                           tf.TensorSpec([2], tf.int32)))
  return images, image_sizes[:, 0], image_sizes[:, 1]


def class_names_of(classes, class_names):
  """string tensor like classes: the name of each label, 'background' for 0 (padding)."""
  table = tf.constant((labels.BACKGROUND_NAME,) + tuple(class_names))
  return tf.gather(table, classes)


def build_serving_graph(encoded_images, ssd_config):
  """Builds decode -> eval preprocessing -> model_fn PREDICT (NMS) -> serving outputs.

  Creates the model's variables in the default graph (restore them from a checkpoint).

  Args:
    encoded_images: string [batch] of encoded images (module docstring).
    ssd_config: utility.config.SSDConfig; see serving_config for the data format.

  Returns:
    dict of OUTPUT_KEYS -> tensors (module docstring).
  """
  images, heights, widths = decode_and_preprocess(encoded_images, ssd_config.model)
  spec = model_fn_lib.ssd_model_fn({'image': images}, None, tf.estimator.ModeKeys.PREDICT,
                                   None, ssd_config)
  predictions = spec.predictions
  boxes = predictions['detection_boxes']
  num_detections = predictions['num_detections']
  # Padding rows stay zero in pixels too (the mapping would turn them into [1, 1, 0, 0]).
  valid = tf.range(tf.shape(boxes)[1])[None, :] < num_detections[:, None]
  pixels = tf.where(valid[..., None],
                    box_lib.batch_normalized_to_voc_pixels(boxes, heights, widths), 0.0)
  return {
      'detection_boxes': boxes,
      'detection_boxes_pixels': pixels,
      'detection_classes': predictions['detection_classes'],
      'detection_class_names': class_names_of(predictions['detection_classes'],
                                              ssd_config.model.class_names),
      'detection_scores': predictions['detection_scores'],
      'num_detections': num_detections,
  }


def restore_variables(session, checkpoint_path):
  """Restores every global variable of the session's graph from checkpoint_path, then
  computes the local ones from them (the Winograd kernel caches, net/winograd.py).

  Raises:
    ValueError: naming the checkpoint when it does not hold the model's variables.
  """
  saver = tf1.train.Saver(tf1.global_variables())
  try:
    saver.restore(session, checkpoint_path)
  except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError) as error:
    raise ValueError('%s does not hold this model (%s): export from the model_dir that trained '
                     'it, whose ssd_config.json describes it.'
                     % (checkpoint_path, error.message.split('\n')[0])) from None
  session.run(tf1.local_variables_initializer())


def _write_saved_model(ssd_config, checkpoint_path, path):
  """Builds the serving graph, restores the checkpoint and saves a SavedModel into path."""
  with tf.Graph().as_default():
    encoded_images = tf1.placeholder(tf.string, [None], name=INPUT_KEY)
    outputs = build_serving_graph(encoded_images, ssd_config)
    signature = tf1.saved_model.predict_signature_def({INPUT_KEY: encoded_images}, outputs)
    with tf1.Session() as session:
      restore_variables(session, checkpoint_path)
      builder = tf1.saved_model.Builder(path)
      # The loader runs main_op after restoring: it computes the Winograd kernel caches.
      builder.add_meta_graph_and_variables(
          session, [tf1.saved_model.tag_constants.SERVING],
          signature_def_map={SIGNATURE_KEY: signature}, strip_default_attrs=True,
          clear_devices=True, main_op=tf1.local_variables_initializer())
      builder.save()


def tflite_config(ssd_config):
  """The settings of the TFLite graph: float32 NHWC whatever trained or serves the model.

  TFLite has no bfloat16 compute and runs convolutions NHWC; the variables are float32 and
  load in either layout, so neither choice changes the weights. NHWC float32 runs on every CPU,
  so nothing needs probing here (net/kernel_support.py). Direct convolutions: TFLite's own
  kernels are tuned for them, and the frozen Winograd graph would be a chain of matrix products.
  """
  return config_lib.override_model(ssd_config, compute_dtype='float32', data_format='NHWC',
                                   conv_algorithm='direct')


def build_tflite_network(images, model_config):
  """The network of the .tflite: raw box offsets and softmax class scores.

  Args:
    images: float32 [batch, image_size, image_size, 3] in image_convention(model_config).
    model_config: utility.config.ModelConfig with compute_dtype float32 (tflite_config).

  Returns:
    dict 'box_offsets' float32 [batch, num_anchors, 4] (t_cy, t_cx, t_h, t_w) and
    'class_scores' float32 [batch, num_anchors, num_classes] softmax, 0 = background; the
    tensors are named as the keys (the names of the .tflite outputs).
  """
  outputs = model_spec.build_network(images, model_config, is_training=False)
  box_name, score_name = tflite_postprocess.OUTPUT_NAMES
  return {box_name: tf.identity(outputs['box_offsets'], name=box_name),
          score_name: tf.identity(tf.nn.softmax(outputs['class_logits'], axis=-1),
                                  name=score_name)}


def _convert_to_tflite(model_config, checkpoint_path):
  """bytes of the .tflite: the network frozen with the checkpoint's weights, float32."""
  size = model_config.image_size
  with tf.Graph().as_default():
    images = tf1.placeholder(tf.float32, [1, size, size, 3], name=tflite_postprocess.INPUT_NAME)
    outputs = build_tflite_network(images, model_config)
    with tf1.Session() as session:
      restore_variables(session, checkpoint_path)
      # The converter freezes the variables, then optimizes the frozen graph together with the
      # graph's collections, whose variables name initializers the frozen graph no longer has
      # (Grappler logs an error line for them). Nothing else reads the collections now.
      for key in session.graph.get_all_collection_keys():
        session.graph.clear_collection(key)
      converter = tf1.lite.TFLiteConverter.from_session(
          session, [images], [outputs[name] for name in tflite_postprocess.OUTPUT_NAMES])
      return converter.convert()


def tflite_settings(ssd_config):
  """utility.tflite_postprocess.Settings of a model: its input and detection output."""
  model, post = ssd_config.model, ssd_config.postprocess
  convention = model_spec.image_convention(model)
  return tflite_postprocess.Settings(
      image_size=model.image_size, mean_rgb=tuple(convention.mean_rgb),
      std_rgb=tuple(convention.std_rgb), channel_order=convention.channel_order,
      class_names=tuple(model.class_names), prior_variances=tuple(model.prior_variances),
      score_threshold=post.score_threshold, pre_nms_top_k=post.pre_nms_top_k,
      nms_iou_threshold=post.nms_iou_threshold,
      max_detections_per_class=post.max_detections_per_class,
      max_detections_per_image=post.max_detections_per_image)


def export_tflite(ssd_config, checkpoint_path, output_dir):
  """Writes ssd.tflite, anchors.npy and postprocess.json of a checkpoint into output_dir.

  Each file is written atomically; the .tflite last, so a folder holding it holds the others.

  Args:
    ssd_config: utility.config.SSDConfig of the trained model (tflite_config is applied here).
    checkpoint_path: checkpoint prefix to export.
    output_dir: folder to write (created if needed).

  Returns:
    The path of the .tflite.

  Raises:
    ValueError: the checkpoint does not hold the model, or its box coder is not the SSD
      center_size coding the numpy post-processing decodes.
  """
  ssd_config = tflite_config(ssd_config)
  if ssd_config.model.box_coder != 'center_size':
    raise ValueError('--tflite decodes boxes with the center_size box coder only; this model '
                     'uses --box_coder=%s: export it without --tflite.'
                     % ssd_config.model.box_coder)
  model_bytes = _convert_to_tflite(ssd_config.model, checkpoint_path)
  with tf.Graph().as_default(), tf1.Session() as session:
    anchors = session.run(model_spec.generate_anchors(ssd_config.model))
  buffer = io.BytesIO()
  np.save(buffer, anchors.astype(np.float32))
  file_io.atomic_write(os.path.join(output_dir, tflite_postprocess.ANCHORS_FILENAME),
                       buffer.getvalue())
  file_io.atomic_write(os.path.join(output_dir, tflite_postprocess.SETTINGS_FILENAME),
                       tflite_settings(ssd_config).to_json(), mode='w')
  path = os.path.join(output_dir, tflite_postprocess.TFLITE_FILENAME)
  file_io.atomic_write(path, model_bytes)
  return path


def _move_into_place(new_dir, export_dir, scratch_dir):
  """Renames new_dir to export_dir, swapping out an existing export_dir (restored on failure)."""
  previous = None
  if os.path.exists(export_dir):
    previous = os.path.join(scratch_dir, 'previous')
    os.rename(export_dir, previous)
  try:
    os.rename(new_dir, export_dir)
  except OSError:
    if previous:
      os.rename(previous, export_dir)
    raise


def export_saved_model(ssd_config, checkpoint_path, export_dir, overwrite=False, tflite=False):
  """Writes the serving SavedModel of a checkpoint into export_dir, atomically.

  Args:
    ssd_config: utility.config.SSDConfig of the trained model (serving_config applied).
    checkpoint_path: checkpoint prefix to export.
    export_dir: the SavedModel folder to create.
    overwrite: replace an existing export_dir.
    tflite: also write the TFLite export into export_dir/tflite (export_tflite).

  Returns:
    export_dir.

  Raises:
    FileExistsError: export_dir exists and overwrite is False.
    ValueError: the checkpoint does not hold the model.
  """
  export_dir = os.path.abspath(export_dir)
  if os.path.exists(export_dir) and not overwrite:
    raise FileExistsError('%s already exists: pass --overwrite to replace it or choose another '
                          '--export_dir.' % export_dir)
  parent = os.path.dirname(export_dir)
  os.makedirs(parent, exist_ok=True)
  scratch_dir = tempfile.mkdtemp(dir=parent, prefix='.tmp-%s-' % os.path.basename(export_dir))
  stages = progress.Progress('export', 3 if tflite else 2, 'stages', every_seconds=0, eta=False)
  stages.update(0, 'building the serving graph, restoring %s, writing the SavedModel'
                % checkpoint_path)
  try:
    new_dir = os.path.join(scratch_dir, 'saved_model')  # the Builder wants a fresh folder
    _write_saved_model(ssd_config, checkpoint_path, new_dir)
    if tflite:
      stages.update(1, 'converting the network to TFLite')
      export_tflite(ssd_config, checkpoint_path, os.path.join(new_dir, TFLITE_SUBDIR))
    stages.update(1, 'moving the export into place')
    _move_into_place(new_dir, export_dir, scratch_dir)
    stages.finish(1, 'wrote %s' % export_dir)
  finally:
    shutil.rmtree(scratch_dir, ignore_errors=True)
  return export_dir


def summary_paragraph(ssd_config, checkpoint_path, export_dir, seconds):
  """The closing paragraph of an export: what, where, how big, how long, and the settings."""
  size = sum(os.path.getsize(os.path.join(folder, name))
             for folder, _, names in os.walk(export_dir) for name in names)
  return ('Exported %s (%s, %s; %s) to %s: %.1f MB in %s. Serve it with '
          'simple_ssd_demo.py --saved_model=%s, or tf.saved_model.load.'
          % (checkpoint_path, ssd_config.model.data_format, ssd_config.model.compute_dtype,
             postprocess_summary(ssd_config), export_dir, size / 2.0**20,
             progress.format_duration(seconds), export_dir))


def postprocess_summary(ssd_config):
  """'score_threshold=0.01, ...': the NMS settings baked into the export, for the log."""
  return ', '.join('%s=%s' % (field.name, getattr(ssd_config.postprocess, field.name))
                   for field in dataclasses.fields(ssd_config.postprocess))
