"""SSD forward speed on CPU and multiply-adds per image.

    python bench/forward.py            # SSD300, NHWC, width 1.0, random weights, batch 1 and 8

Builds the network once with an unknown batch, runs a few warm-up batches, then times
`--iterations` batches per batch size. Multiply-adds are computed from the graph's convolutions
(output height * width * depth * kernel height * kernel width * input depth), which is where all
but a negligible part of the work is (L2 norm, pooling, bias and ReLU are not counted).
Prints a table; the last line is one JSON object.
"""

import json
import os
import sys
import time

if not __package__:  # Run as a script: put the repo root on sys.path.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from net import ssd_net  # noqa: E402
from utility import anchors  # noqa: E402
from utility import hardware  # noqa: E402

tf1 = tf.compat.v1

flags.DEFINE_enum('architecture', 'ssd300', ['ssd300', 'ssd512'], 'Network to time.')
flags.DEFINE_list('batch_sizes', ['1', '8'], 'Batch sizes to time.')
flags.DEFINE_integer('warmup', 2, 'Untimed batches before timing each batch size.')
flags.DEFINE_integer('iterations', 5, 'Timed batches per batch size.')
FLAGS = flags.FLAGS



def conv_macs_per_image(graph, model_scope):
  """Multiply-adds per image of every Conv2D under model_scope, split by part.

  Returns:
    dict part -> int ('backbone', 'extras', 'box_heads', 'class_heads') plus 'total'.
  """
  macs = {part: 0 for part, scope in ssd_net.PARAMETER_PARTS if scope != 'conv4_3_norm'}
  for op in graph.get_operations():
    if op.type != 'Conv2D' or not op.name.startswith(model_scope + '/'):
      continue
    kernel_h, kernel_w, in_depth, out_depth = op.inputs[1].shape.as_list()
    output_shape = op.outputs[0].shape.as_list()
    nhwc = op.get_attr('data_format') == b'NHWC'
    height, width = output_shape[1:3] if nhwc else output_shape[2:4]
    count = height * width * out_depth * kernel_h * kernel_w * in_depth
    scope = op.name[len(model_scope) + 1:].split('/')[0]
    part = next(p for p, s in ssd_net.PARAMETER_PARTS if s == scope)
    macs[part] += count
  macs['total'] = sum(macs.values())
  return macs


def time_batches(session, images, outputs, batch_size):
  """Returns (images per second, seconds per batch) after warm-up."""
  feed = {images: np.random.RandomState(0).uniform(
      -120, 150, [batch_size] + images.shape.as_list()[1:]).astype(np.float32)}
  for _ in range(FLAGS.warmup):
    session.run(outputs, feed)
  start = time.perf_counter()
  for _ in range(FLAGS.iterations):
    session.run(outputs, feed)
  seconds_per_batch = (time.perf_counter() - start) / FLAGS.iterations
  return batch_size / seconds_per_batch, seconds_per_batch


def main(argv):
  del argv
  architecture = FLAGS.architecture
  size = ssd_net.ARCHITECTURES[architecture].image_size
  with tf.Graph().as_default() as graph:
    tf1.set_random_seed(0)
    images = tf1.placeholder(tf.float32, [None, size, size, 3])
    anchors_per_location = anchors.num_anchors_per_location(anchors.PRESETS[architecture][1])
    net = ssd_net.build_ssd(images, architecture, 21, anchors_per_location)
    outputs = [net['box_offsets'], net['class_logits']]
    parameters = ssd_net.count_parameters(architecture)['total']
    macs = conv_macs_per_image(graph, architecture)
    results = {}
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      for batch_size in [int(b) for b in FLAGS.batch_sizes]:
        results[batch_size] = time_batches(session, images, outputs, batch_size)

  print('%s forward, NHWC, width 1.0, CPU (%d cores), %d timed batches after %d warm-up'
        % (architecture, os.cpu_count(), FLAGS.iterations, FLAGS.warmup))
  print('%-8s %14s %16s' % ('batch', 'images/s', 'seconds/batch'))
  for batch_size, (images_per_sec, seconds) in results.items():
    print('%-8d %14.2f %16.3f' % (batch_size, images_per_sec, seconds))
  print('multiply-adds per image: %s' % ', '.join(
      '%s %.3f G' % (part, count / 1e9) for part, count in macs.items()))
  print('parameters: %d' % parameters)
  machine = hardware.describe()
  print('machine: %s' % hardware.describe_line(machine))
  summary = {'architecture': architecture, 'data_format': 'NHWC', 'cpu_count': os.cpu_count(),
             'macs_per_image': macs['total'], 'parameters': parameters, 'machine': machine}
  for batch_size, (images_per_sec, seconds) in results.items():
    summary['forward_images_per_sec_b%d' % batch_size] = round(images_per_sec, 3)
    summary['forward_seconds_per_batch_b%d' % batch_size] = round(seconds, 4)
  print(json.dumps(summary))


if __name__ == '__main__':
  app.run(main)
