"""The machine's convolution rate: single 3x3 convolutions (+ bias + ReLU) of SSD300-VGG16's
shapes, each alone in a graph, in multiply-adds per second (with --conv_algorithm=winograd:
the direct convolution's multiply-adds per second of Winograd time, so the two compare).

    python bench/conv_peak.py                      # float32, batch 8
    python bench/conv_peak.py --compute_dtype=bfloat16
    TF_ENABLE_ONEDNN_OPTS=0 python bench/conv_peak.py   # TensorFlow's default kernels
        (without it: oneDNN as bench/forward.py decides it, utility/onednn.py)
    python bench/conv_peak.py --conv_algorithm=winograd  # net/winograd.py, layer by layer

What bench/forward.py's GMAC/s column is to be compared with: a network running at these
rates has no overhead left to remove above its convolutions. Random inputs and weights; one
session per shape, --warmup untimed runs, then --iterations timed ones.
Prints a table; the last line is one JSON object.
"""

import json
import os
import sys
import time

if not __package__:  # Run as a script: put the repo root on sys.path.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

if __name__ == '__main__':  # before TensorFlow is imported: it reads the choice then
  from utility import onednn  # noqa: E402  (imports no TensorFlow)
  onednn.apply('inference')

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from net import winograd  # noqa: E402
from utility import hardware  # noqa: E402

tf1 = tf.compat.v1

# name: (spatial side, input depth, output depth) of SSD300-VGG16 layers at 300 x 300.
SHAPES = {'conv1_2': (300, 64, 64), 'conv2_1': (150, 64, 128), 'conv2_2': (150, 128, 128),
          'conv3_1': (75, 128, 256), 'conv3_3': (75, 256, 256), 'conv4_3': (38, 512, 512),
          'conv5_3': (19, 512, 512)}
DEFAULT_LAYERS = ['conv1_2', 'conv2_2', 'conv3_3', 'conv4_3', 'conv5_3']

flags.DEFINE_integer('batch_size', 8, 'Images per convolution.')
flags.DEFINE_list('layers', DEFAULT_LAYERS, 'Which of the VGG16 shapes to time, of %s.'
                  % ', '.join(SHAPES))
flags.DEFINE_enum('conv_algorithm', 'direct', ['direct', 'winograd'],
                  'tf.nn.conv2d, or net/winograd.py (float32) whatever its layer rule says.')
flags.DEFINE_enum('compute_dtype', 'float32', ['float32', 'bfloat16'], 'Convolution dtype.')
flags.DEFINE_integer('warmup', 2, 'Untimed runs per shape.')
flags.DEFINE_integer('iterations', 5, 'Timed runs per shape.')
FLAGS = flags.FLAGS


def time_conv(side, in_depth, out_depth, batch_size, dtype, warmup, iterations,
              algorithm='direct'):
  """(seconds per run, multiply-adds per run) of one 3x3 SAME convolution + bias + ReLU."""
  graph = tf.Graph()
  with graph.as_default():
    inputs = tf1.placeholder(tf.float32, [batch_size, side, side, in_depth])
    kernel = tf1.get_variable('kernel', [3, 3, in_depth, out_depth],
                              initializer=tf1.random_normal_initializer(stddev=0.01))
    bias = tf1.get_variable('bias', [out_depth], initializer=tf1.zeros_initializer())
    if algorithm == 'winograd':
      net = winograd.conv3x3(inputs, winograd.cached_transformed_kernel(kernel), 1)
    else:
      net = tf.nn.conv2d(tf.cast(inputs, dtype), tf.cast(kernel, dtype), 1, 'SAME')
    output = tf.reduce_sum(tf.cast(tf.nn.relu(tf.nn.bias_add(net, tf.cast(bias, dtype))),
                                   tf.float32))
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      session.run(tf1.local_variables_initializer())  # the Winograd kernel cache
      feed = {inputs: np.random.RandomState(0).uniform(
          0, 1, inputs.shape.as_list()).astype(np.float32)}
      for _ in range(warmup):
        session.run(output, feed)
      start = time.perf_counter()
      for _ in range(iterations):
        session.run(output, feed)
      seconds = (time.perf_counter() - start) / iterations
  return seconds, batch_size * side * side * in_depth * out_depth * 9


def main(argv):
  del argv
  dtype = tf.bfloat16 if FLAGS.compute_dtype == 'bfloat16' else tf.float32
  if FLAGS.conv_algorithm == 'winograd' and FLAGS.compute_dtype != 'float32':
    raise app.UsageError('--conv_algorithm=winograd computes float32 only.')
  print('3x3 convolution + bias + ReLU, NHWC, %s, %s, batch %d'
        % (FLAGS.compute_dtype, FLAGS.conv_algorithm, FLAGS.batch_size))
  print('%-10s %-18s %10s %10s' % ('layer', 'shape', 'ms/run', 'GMAC/s'))
  summary = {'compute_dtype': FLAGS.compute_dtype, 'conv_algorithm': FLAGS.conv_algorithm,
             'batch_size': FLAGS.batch_size}
  for name in FLAGS.layers:
    side, in_depth, out_depth = SHAPES[name]
    seconds, macs = time_conv(side, in_depth, out_depth, FLAGS.batch_size, dtype,
                              FLAGS.warmup, FLAGS.iterations, FLAGS.conv_algorithm)
    print('%-10s %-18s %10.1f %10.1f' % (name, '%dx%dx%d->%d' % (side, side, in_depth, out_depth),
                                         seconds * 1e3, macs / seconds / 1e9))
    summary['conv_gmacs_per_sec_%s' % name] = round(macs / seconds / 1e9, 1)
  machine = hardware.describe()
  print('machine: %s' % hardware.describe_line(machine))
  summary['machine'] = machine
  print(json.dumps(summary))


if __name__ == '__main__':
  tf1.disable_eager_execution()
  app.run(main)
