"""fc6's dilated convolution: per-tap 1x1 convolutions (what the network uses), the native op,
and space-to-batch (what tf.nn.convolution does for a dilated kernel).

    python bench/dilated_conv.py [--batch_size=8] [--iterations=10]
    TF_ENABLE_ONEDNN_OPTS=1 python bench/dilated_conv.py   # where the native op trains on a CPU

The network computes fc6 (3x3, dilation 6) with net.layers.atrous_conv2d because the native
op's filter gradient has no kernel in TensorFlow's default CPU implementation. This times both
on the fc6 shapes of SSD300 (19x19x512 -> 1024) and of the quick model (12x12x128 -> 256,
width 1/4 at 192 px): the forward pass, and forward + gradients of the input and the kernel
(a training step's share). The native training figure is 'n/a' where its gradient does not
run (oneDNN off). Prints a table; the last line is one JSON object.
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

from net import layers  # noqa: E402
from utility import hardware  # noqa: E402

tf1 = tf.compat.v1

flags.DEFINE_integer('batch_size', 8, 'Images per batch.')
flags.DEFINE_integer('warmup', 2, 'Untimed runs before timing.')
flags.DEFINE_integer('iterations', 10, 'Timed runs per figure.')
FLAGS = flags.FLAGS

RATE = 6
# name -> (feature-map side, input depth, output depth) of fc6.
SHAPES = {'ssd300': (19, 512, 1024), 'quick': (12, 128, 256)}
IMPLEMENTATIONS = ('per_tap', 'native', 'space_to_batch')


def _time(session, fetches):
  """Median milliseconds of session.run(fetches), or None if the kernels do not run."""
  try:
    for _ in range(FLAGS.warmup):
      session.run(fetches)
  except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
    return None
  times = []
  for _ in range(FLAGS.iterations):
    start = time.perf_counter()
    session.run(fetches)
    times.append(time.perf_counter() - start)
  return 1000.0 * float(np.median(times))


def time_shape(side, in_depth, out_depth):
  """{(implementation, 'forward'|'train'): ms or None} for one fc6 shape."""
  rng = np.random.RandomState(0)
  results = {}
  with tf.Graph().as_default():
    images = tf.Variable(rng.randn(FLAGS.batch_size, side, side, in_depth).astype(np.float32))
    kernel = tf.Variable(rng.randn(3, 3, in_depth, out_depth).astype(np.float32) * 0.01)
    outputs = {
        'per_tap': layers.atrous_conv2d(images, kernel, RATE, 'SAME'),
        'native': tf.nn.conv2d(images, kernel, 1, 'SAME', dilations=[1, RATE, RATE, 1]),
        # tf.nn.convolution takes the native op only without dilation; dilated kernels go
        # through space_to_batch + a plain convolution + batch_to_space.
        'space_to_batch': tf.nn.convolution(images, kernel, padding='SAME', dilations=RATE),
    }
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      for name, output in outputs.items():
        gradients = tf.gradients(tf.reduce_sum(output * output), [images, kernel])
        results[(name, 'forward')] = _time(session, output.op)
        results[(name, 'train')] = _time(session, [g.op for g in gradients])
  return results


def main(argv):
  del argv
  tf1.disable_eager_execution()
  machine = hardware.describe()
  table = {name: time_shape(*shape) for name, shape in SHAPES.items()}
  print('fc6 (3x3, dilation %d), batch %d, NHWC float32, median of %d runs, ms per batch'
        % (RATE, FLAGS.batch_size, FLAGS.iterations))
  print('machine: %s' % hardware.describe_line(machine))
  print('%-8s %-16s %12s %22s' % ('shape', 'implementation', 'forward ms',
                                  'forward+gradients ms'))
  summary = {'batch_size': FLAGS.batch_size, 'machine': machine}
  for shape, results in table.items():
    for implementation in IMPLEMENTATIONS:
      forward, train = results[(implementation, 'forward')], results[(implementation, 'train')]
      print('%-8s %-16s %12s %22s' % (shape, implementation,
                                      'n/a' if forward is None else '%.2f' % forward,
                                      'n/a' if train is None else '%.2f' % train))
      summary['%s_%s_forward_ms' % (shape, implementation)] = (
          None if forward is None else round(forward, 3))
      summary['%s_%s_train_ms' % (shape, implementation)] = (
          None if train is None else round(train, 3))
  print(json.dumps(summary))


if __name__ == '__main__':
  app.run(main)
