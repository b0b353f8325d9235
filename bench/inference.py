r"""End-to-end SSD detection speed on CPU, and the VOC evaluator's time.

    python bench/inference.py [--batch_sizes=1,8] [--iterations=4] [--warmup=1] \
        [--architecture=ssd300] [--skip_voc_eval] [--conv_algorithm=auto|direct|winograd]

Detection runs the serving graph of net/export.py, the path export and the demo use: JPEG bytes
in (500 x 375, the typical VOC size) -> decode -> eval resize + mean -> network (NHWC, width 1.0,
21 classes) -> box decoding -> per-class NMS with the reference settings -> pixel boxes. The
weights are random (speed does not depend on their values, except through NMS): with random
weights every class scores ~1/21 > 0.01 on every anchor, so NMS sees the full 400 candidates of
all 20 classes, the worst case; a trained model sends far fewer boxes to NMS. Two more columns
time decoding + preprocessing alone and the post-processing alone (softmax, box decoding and
NMS fed outputs like a random-weight network's: the same worst case). The convolutions are what export_ssd.py would
write here (net/export.serving_config: --conv_algorithm=auto is this machine's choice).

The evaluator row is bench/voc_eval_bench.py's ``time_evaluator``: utility/voc_metric.py on
4,952 images x 20 classes of synthetic detections (200 per image).

Prints a table; the last line is one JSON object.
"""

import json
import os
import sys
import time

if not __package__:  # Run as a script: put the repo root on sys.path.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

if __name__ == '__main__':  # before TensorFlow is imported: it reads the choice then
  from utility import onednn  # noqa: E402  (imports no TensorFlow)
  onednn.apply('inference')

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.voc_eval_bench import time_evaluator  # noqa: E402
from net import export  # noqa: E402
from net import model_fn  # noqa: E402
from net import model_spec  # noqa: E402
from net import ssd_net  # noqa: E402
from utility import config as config_lib  # noqa: E402
from utility import hardware  # noqa: E402

tf1 = tf.compat.v1

flags.DEFINE_enum('architecture', 'ssd300', ['ssd300', 'ssd512'], 'Network to time.')
flags.DEFINE_list('batch_sizes', ['1', '8'], 'Batch sizes to time.')
flags.DEFINE_integer('warmup', 1, 'Untimed batches before timing each batch size.')
flags.DEFINE_integer('iterations', 4, 'Timed batches per batch size.')
flags.DEFINE_bool('skip_voc_eval', False, 'Do not time the VOC evaluator.')
flags.DEFINE_enum('conv_algorithm', 'auto', ['auto', 'direct', 'winograd'],
                  'Convolutions of the serving graph (net/winograd.py).')
FLAGS = flags.FLAGS

IMAGE_WIDTH, IMAGE_HEIGHT = 500, 375


def synthetic_jpegs(count, seed=0):
  """count JPEG (quality 90) byte strings of 500 x 375 images: gradients with filled boxes."""
  rng = np.random.RandomState(seed)
  y, x = np.mgrid[0:IMAGE_HEIGHT, 0:IMAGE_WIDTH]
  jpegs = []
  for _ in range(count):
    image = np.stack([x * 255 // IMAGE_WIDTH, y * 255 // IMAGE_HEIGHT,
                      rng.randint(0, 256) + 0 * x], axis=-1).astype(np.uint8)
    for _ in range(4):
      x0, y0 = rng.randint(0, IMAGE_WIDTH - 100), rng.randint(0, IMAGE_HEIGHT - 100)
      cv2.rectangle(image, (x0, y0), (x0 + rng.randint(30, 100), y0 + rng.randint(30, 100)),
                    tuple(int(c) for c in rng.randint(0, 256, 3)), cv2.FILLED)
    jpegs.append(cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
  return jpegs


def time_fetch(session, fetch, feed, batch_size):
  """(images per second, seconds per batch) of session.run(fetch, feed) after warm-up."""
  for _ in range(FLAGS.warmup):
    session.run(fetch, feed)
  start = time.perf_counter()
  for _ in range(FLAGS.iterations):
    result = session.run(fetch, feed)
  seconds = (time.perf_counter() - start) / FLAGS.iterations
  return batch_size / seconds, seconds, result


def time_detection(architecture, batch_sizes):
  """(conv algorithm, {batch size: {'detect': (images/s, s/batch), 'decode': ..., 'post': ...,
  'num_detections': mean}})."""
  ssd_config = export.serving_config(config_lib.SSDConfig(model=config_lib.ModelConfig(
      architecture=architecture, image_size=ssd_net.ARCHITECTURES[architecture].image_size,
      data_format='NHWC', conv_algorithm=FLAGS.conv_algorithm)))
  jpegs = synthetic_jpegs(max(batch_sizes))
  results = {}
  with tf.Graph().as_default():
    tf1.set_random_seed(0)
    encoded_images = tf1.placeholder(tf.string, [None])
    outputs = export.build_serving_graph(encoded_images, ssd_config)
    decoded = export.decode_and_preprocess(encoded_images, ssd_config.model)[0]
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      session.run(tf1.local_variables_initializer())  # the Winograd kernel caches
      for batch_size in batch_sizes:
        feed = {encoded_images: jpegs[:batch_size]}
        detect = time_fetch(session, outputs, feed, batch_size)
        decode = time_fetch(session, decoded, feed, batch_size)
        results[batch_size] = {'detect': detect[:2], 'decode': decode[:2],
                               'num_detections': float(np.mean(detect[2]['num_detections']))}
  for batch_size in batch_sizes:
    results[batch_size]['post'] = time_postprocess(ssd_config, batch_size)
  return ssd_config.model.conv_algorithm, results


def time_postprocess(ssd_config, batch_size):
  """(images/s, s/batch) of softmax + box decoding + NMS alone (net/model_fn.build_detections)
  on outputs like a random-weight network's: logits N(0, 0.1), so every class scores about
  1/21 > 0.01 on every default box, the worst case."""
  rng = np.random.RandomState(1)
  with tf.Graph().as_default():
    anchors = model_spec.generate_anchors(ssd_config.model)
    num_anchors = int(anchors.shape[0])
    offsets = tf1.placeholder(tf.float32, [None, num_anchors, 4])
    logits = tf1.placeholder(tf.float32, [None, num_anchors, ssd_config.model.num_classes])
    detections = model_fn.build_detections({'box_offsets': offsets, 'class_logits': logits},
                                           anchors, ssd_config)
    feed = {offsets: rng.normal(0, 0.1, [batch_size, num_anchors, 4]).astype(np.float32),
            logits: rng.normal(0, 0.1, [batch_size, num_anchors, ssd_config.model.num_classes])
                    .astype(np.float32)}
    with tf1.Session() as session:
      return time_fetch(session, detections, feed, batch_size)[:2]


def main(argv):
  del argv
  tf1.disable_eager_execution()
  batch_sizes = [int(b) for b in FLAGS.batch_sizes]
  algorithm, detection = time_detection(FLAGS.architecture, batch_sizes)
  evaluator = None if FLAGS.skip_voc_eval else time_evaluator()

  print('%s end-to-end detection, NHWC, %s convolutions, width 1.0, random weights, CPU (%d '
        'cores), JPEG %dx%d, %d timed batches after %d warm-up'
        % (FLAGS.architecture, algorithm, os.cpu_count(), IMAGE_WIDTH, IMAGE_HEIGHT,
           FLAGS.iterations, FLAGS.warmup))
  print('%-6s %16s %14s %20s %18s %18s' % ('batch', 'detect images/s', 'seconds/batch',
                                           'decode+resize img/s', 'postprocess ms/img',
                                           'detections/image'))
  for batch_size, row in detection.items():
    print('%-6d %16.2f %14.3f %20.1f %18.1f %18.1f'
          % (batch_size, row['detect'][0], row['detect'][1], row['decode'][0],
             1e3 * row['post'][1] / batch_size, row['num_detections']))
  summary = {'architecture': FLAGS.architecture, 'data_format': 'NHWC', 'random_weights': True,
             'conv_algorithm': algorithm, 'cpu_count': os.cpu_count()}
  for batch_size, row in detection.items():
    summary['detect_images_per_sec_b%d' % batch_size] = round(row['detect'][0], 3)
    summary['detect_seconds_per_batch_b%d' % batch_size] = round(row['detect'][1], 4)
    summary['decode_preprocess_images_per_sec_b%d' % batch_size] = round(row['decode'][0], 1)
    summary['postprocess_ms_per_image_b%d' % batch_size] = round(
        1e3 * row['post'][1] / batch_size, 2)
  if evaluator:
    print('VOC evaluator (utility/voc_metric.py), 4952 images x 20 classes, %d detections: '
          '%.2f s' % (evaluator['num_detections'], evaluator['voc_eval_seconds']))
    summary['voc_eval_seconds'] = round(evaluator['voc_eval_seconds'], 3)
  summary['machine'] = hardware.describe()
  print('machine: %s' % hardware.describe_line(summary['machine']))
  print(json.dumps(summary))


if __name__ == '__main__':
  app.run(main)
