"""SSD forward speed on CPU and multiply-adds per image.

    python bench/forward.py            # SSD300, NHWC, width 1.0, random weights, batch 1 and 8
    python bench/forward.py --architecture=ssdlite     # SSDLite-MobileNetV2
    python bench/forward.py --architecture=ssd300 --backbone=mobilenet_v1
    python bench/forward.py --architecture=ssd_quick --width_multiplier=0.25 --stem=strided
    python bench/forward.py --architecture=ssd_quick --backbone=mobilenet_v1 \
        --width_multiplier=0.5 --backbone_sources=stride8
    python bench/forward.py --table    # parameters and multiply-adds of every backbone x head
    python bench/forward.py --compute_dtype=bfloat16   # bfloat16 convolutions (AVX512_BF16/AMX)
    python bench/forward.py --batch_sizes=8 --trace_batch_size=8   # where the time goes, per op
    python bench/forward.py --conv_algorithm=direct   # no Winograd (auto: as inference runs here)

Builds the network once with an unknown batch, runs a few warm-up batches, then times
`--iterations` batches per batch size. Multiply-adds are computed from the graph's convolutions
(output height * width * depth * kernel height * kernel width * input depth; depthwise ones
output height * width * depth * kernel height * kernel width), which is where all but a
negligible part of the work is (L2 norm, pooling, batch norm, bias and ReLU are not counted).
Models whose architecture has no default-box preset for the backbone use boxes spread from 0.2
to 0.95 (the MobileNet recipes').
Each row also gives the multiply-adds per second achieved (2 FLOPs each), to compare with the
machine's convolution rate; with Winograd convolutions (--conv_algorithm) the count stays the
direct convolutions' (the work the network means, not the multiplies it does).
Prints a table; the last line is one JSON object.
"""

import dataclasses
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

from bench.bench_models import TABLE_MODELS, model_config  # noqa: E402
from bench import op_trace  # noqa: E402
from bench import winograd_depths  # noqa: E402
from net import kernel_support  # noqa: E402
from net import model_spec  # noqa: E402
from net import ssd_net  # noqa: E402
from utility import hardware  # noqa: E402

tf1 = tf.compat.v1

flags.DEFINE_enum('architecture', 'ssd300', sorted(ssd_net.ARCHITECTURES), 'Network to time.')
flags.DEFINE_string('backbone', '', "Backbone; '' = the architecture's own.")
flags.DEFINE_float('width_multiplier', 1.0, 'Backbone width.')
flags.DEFINE_string('stem', 'reference', "The backbone's first layers (--stem of train_ssd.py).")
flags.DEFINE_string('backbone_sources', 'reference',
                    'The layers feeding the heads (--backbone_sources of train_ssd.py).')
flags.DEFINE_bool('table', False, 'Only print parameters and multiply-adds of TABLE_MODELS.')
flags.DEFINE_list('batch_sizes', ['1', '8'], 'Batch sizes to time.')
flags.DEFINE_integer('warmup', 2, 'Untimed batches before timing each batch size.')
flags.DEFINE_integer('iterations', 5, 'Timed batches per batch size.')
flags.DEFINE_integer('trace_batch_size', 0, 'Also trace one batch of this size (RunMetadata '
                     'FULL_TRACE) and print the time per op type and the slowest ops; 0 = no.')
flags.DEFINE_enum('compute_dtype', 'float32', ['float32', 'bfloat16'],
                  'Convolution dtype (float32 variables either way); bfloat16 is fast only '
                  'with AVX512_BF16 or AMX and oneDNN on.')
flags.DEFINE_enum('conv_algorithm', 'auto', list(kernel_support.CONV_ALGORITHMS),
                  "Inference convolutions (net/winograd.py); auto = this machine's choice.")
winograd_depths.define_flag()
FLAGS = flags.FLAGS



def conv_macs_per_image(graph, model_scope, backbone='vgg16'):
  """Multiply-adds per image of every Conv2D under model_scope, split by part.

  Returns:
    dict part -> int ('backbone', 'extras', 'box_heads', 'class_heads') plus 'total'.
  """
  parts = ssd_net.parameter_parts(backbone)
  macs = {part: 0 for part, scope in parts if scope != 'conv4_3_norm'}
  for op in graph.get_operations():
    if (op.type not in ('Conv2D', 'DepthwiseConv2dNative')
        or not op.name.startswith(model_scope + '/')):
      continue
    kernel_h, kernel_w, in_depth, out_depth = op.inputs[1].shape.as_list()
    output_shape = op.outputs[0].shape.as_list()
    nhwc = op.get_attr('data_format') == b'NHWC'
    height, width = output_shape[1:3] if nhwc else output_shape[2:4]
    if op.type == 'DepthwiseConv2dNative':  # out_depth is the channel multiplier
      count = height * width * in_depth * out_depth * kernel_h * kernel_w
    else:
      count = height * width * out_depth * kernel_h * kernel_w * in_depth
    scope = op.name[len(model_scope) + 1:].split('/')[0]
    part = next(p for p, s in parts if s == scope)
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


def trace_batch(session, images, outputs, batch_size):
  """op_trace.trace_run of one batch of random images."""
  feed = {images: np.random.RandomState(1).uniform(
      -120, 120, [batch_size] + images.shape.as_list()[1:]).astype(np.float32)}
  return op_trace.trace_run(session, outputs, feed)


def build(config):
  """(graph, images placeholder, outputs, parameters, macs) of a model with random weights.

  The multiply-adds are counted on the direct convolutions' graph whatever
  config.conv_algorithm is (a Winograd layer has no Conv2D op to count).
  """
  if config.conv_algorithm == 'winograd':
    macs = build(dataclasses.replace(config, conv_algorithm='direct'))[4]
  graph = tf.Graph()
  with graph.as_default():
    tf1.set_random_seed(0)
    size = config.image_size
    images = tf1.placeholder(tf.float32, [None, size, size, 3])
    net = model_spec.build_network(images, config, is_training=False)
    backbone = model_spec.backbone(config).name
    parameters = ssd_net.count_parameters(config.scope, backbone=backbone)['total']
    if config.conv_algorithm != 'winograd':
      macs = conv_macs_per_image(graph, config.scope, backbone)
  return graph, images, [net['box_offsets'], net['class_logits']], parameters, macs


def print_table():
  print('%-10s %-14s %6s %12s %10s %9s' % ('head', 'backbone', 'input', 'parameters', 'GMAC/img',
                                          'anchors'))
  rows = []
  for architecture, backbone in TABLE_MODELS:
    config = model_config(architecture, backbone)
    _, _, outputs, parameters, macs = build(config)
    rows.append({'architecture': architecture, 'backbone': backbone,
                 'image_size': config.image_size, 'parameters': parameters,
                 'macs_per_image': macs['total'], 'num_anchors': int(outputs[0].shape[1])})
    print('%-10s %-14s %6d %12d %10.3f %9d' % (architecture, backbone, config.image_size,
                                              parameters, macs['total'] / 1e9,
                                              rows[-1]['num_anchors']))
  print(json.dumps({'models': rows}))


def main(argv):
  del argv
  if FLAGS.table:
    print_table()
    return
  architecture = FLAGS.architecture
  winograd_depths.apply()
  algorithm, reason = kernel_support.choose_conv_algorithm(
      FLAGS.conv_algorithm, 'NHWC', FLAGS.compute_dtype, kernel_support.current_machine())
  config = dataclasses.replace(model_config(architecture, FLAGS.backbone, FLAGS.width_multiplier),
                               compute_dtype=FLAGS.compute_dtype, conv_algorithm=algorithm,
                               stem=FLAGS.stem, backbone_sources=FLAGS.backbone_sources)
  graph, images, outputs, parameters, macs = build(config)
  results = {}
  with graph.as_default(), tf1.Session() as session:
    session.run(tf1.global_variables_initializer())
    session.run(tf1.local_variables_initializer())  # the Winograd kernel caches
    for batch_size in [int(b) for b in FLAGS.batch_sizes]:
      results[batch_size] = time_batches(session, images, outputs, batch_size)
    trace = (trace_batch(session, images, outputs, FLAGS.trace_batch_size)
             if FLAGS.trace_batch_size else None)

  print('%s (%s) forward, NHWC, %s, %s convolutions, width %s, CPU (%d cores), %d timed '
        'batches after %d warm-up' % (architecture, model_spec.backbone(config).name,
                                      FLAGS.compute_dtype, algorithm, FLAGS.width_multiplier,
                                      os.cpu_count(), FLAGS.iterations, FLAGS.warmup))
  print(reason)
  print('%-8s %14s %16s %12s' % ('batch', 'images/s', 'seconds/batch', 'GMAC/s'))
  for batch_size, (images_per_sec, seconds) in results.items():
    print('%-8d %14.2f %16.3f %12.1f' % (batch_size, images_per_sec, seconds,
                                         images_per_sec * macs['total'] / 1e9))
  print('multiply-adds per image: %s' % ', '.join(
      '%s %.3f G' % (part, count / 1e9) for part, count in macs.items()))
  print('parameters: %d' % parameters)
  if trace:
    op_trace.print_trace(trace, 'traced batch of %d' % FLAGS.trace_batch_size)
  machine = hardware.describe()
  print('machine: %s' % hardware.describe_line(machine))
  summary = {'architecture': architecture, 'backbone': model_spec.backbone(config).name,
             'data_format': 'NHWC', 'compute_dtype': FLAGS.compute_dtype,
             'conv_algorithm': algorithm,
             'cpu_count': os.cpu_count(),
             'macs_per_image': macs['total'], 'parameters': parameters, 'machine': machine}
  for batch_size, (images_per_sec, seconds) in results.items():
    summary['forward_images_per_sec_b%d' % batch_size] = round(images_per_sec, 3)
    summary['forward_seconds_per_batch_b%d' % batch_size] = round(seconds, 4)
    summary['forward_gmacs_per_sec_b%d' % batch_size] = round(
        images_per_sec * macs['total'] / 1e9, 1)
  if trace:
    summary.update(op_trace.summary_of(trace))
  print(json.dumps(summary))


if __name__ == '__main__':
  app.run(main)
