"""Peak memory of SSD training on CPU, per model and batch size (process peak RSS).

    python bench/peak_memory.py          # SSD300-VGG16 and SSDLite-MobileNetV2, batch 1 and 8
    python bench/peak_memory.py --models=ssd300:vgg16,ssd512:vgg16 --batch_sizes=1,8,32
    python bench/peak_memory.py --batch_sizes=8 --gradient_accumulation_steps=4
        # 8-image micro-batches, one optimizer step per 32 images

Each (model, batch size) runs in a fresh child process (this script with --child), so no row
inherits another's allocations: it builds the real model_fn train op (random initial weights,
momentum SGD, weight decay, float32, NHWC; the batch norm of the shipped recipes: none in VGG16,
everywhere in the MobileNets) on random images and random targets generated in the graph (about
0.3% positive anchors), runs --warmup then --steps optimizer steps (each of
--gradient_accumulation_steps micro-batches of --batch_sizes images) and reports its peak
resident set size: VmHWM of /proc/self/status (ru_maxrss where there is no /proc). The peak
after the imports (TensorFlow and this project), before any graph, is the floor under every
row.
Prints a table; the last line is one JSON object.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

if not __package__:  # Run as a script: put the repo root on sys.path.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.bench_models import model_config  # noqa: E402
from net import model_fn  # noqa: E402
from net import model_spec  # noqa: E402
from net import ssd_net  # noqa: E402
from utility import config as config_lib  # noqa: E402
from utility import hardware  # noqa: E402
from utility import onednn  # noqa: E402

tf1 = tf.compat.v1

flags.DEFINE_list('models', ['ssd300:vgg16', 'ssdlite:mobilenet_v2'],
                  'architecture:backbone pairs (net.ssd_net.ARCHITECTURES, net.backbones); '
                  "the backbone may be left out ('ssd512' = its own).")
flags.DEFINE_list('batch_sizes', ['1', '8'], 'Images per session run (micro-batch).')
flags.DEFINE_integer('gradient_accumulation_steps', 1, 'Micro-batches per optimizer step.')
flags.DEFINE_integer('steps', 2, 'Measured optimizer steps per row, after --warmup.')
flags.DEFINE_integer('warmup', 1, 'Optimizer steps before the measured ones.')
flags.DEFINE_string('child', '', 'Internal: architecture:backbone:batch_size of one child run.')
FLAGS = flags.FLAGS

MIB = 1024.0 * 1024.0


def peak_rss_mib():
  """This process's peak resident set size in MiB (VmHWM; ru_maxrss without /proc)."""
  try:
    with open('/proc/self/status', encoding='ascii') as f:
      for line in f:
        if line.startswith('VmHWM:'):
          return int(line.split()[1]) * 1024 / MIB  # the value is in kB
  except OSError:
    pass
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return peak / MIB if sys.platform == 'darwin' else peak * 1024 / MIB  # bytes / KiB


def _ssd_config(architecture, backbone, batch_size, accumulation_steps):
  """The model of the shipped recipe for the pair (the preset boxes where they fit, else
  0.2 to 0.95 as the MobileNet recipes), trained with momentum at a constant rate."""
  model = model_config(architecture, backbone)
  train = config_lib.TrainConfig(batch_size=batch_size, warmup_steps=0,
                                 gradient_accumulation_steps=accumulation_steps)
  return config_lib.SSDConfig(model=model, train=train)


def _random_batch(ssd_config, batch_size):
  """features, labels of random images and targets, made in the graph (no constants)."""
  model = ssd_config.model
  num_anchors = int(model_spec.generate_anchors(model).shape[0])
  size = model.image_size
  images = tf.random.uniform([batch_size, size, size, 3], -120.0, 150.0, seed=1)
  positive = tf.random.uniform([batch_size, num_anchors], seed=2) < 0.003
  classes = tf.random.uniform([batch_size, num_anchors], 1, model.num_classes, tf.int64, seed=3)
  labels = {
      'cls_targets': tf.where(positive, classes, tf.zeros_like(classes)),
      'loc_targets': tf.random.normal([batch_size, num_anchors, 4], stddev=0.5, seed=4),
      'boxes': tf.tile(tf.constant([[[0.2, 0.2, 0.7, 0.8]]]), [batch_size, 1, 1]),
      'labels': tf.ones([batch_size, 1], tf.int64),
      'difficult': tf.zeros([batch_size, 1], tf.int64),
      'num_boxes': tf.ones([batch_size], tf.int32)}
  return {'image': images}, labels


def run_child(spec):
  """Trains one model in this process; returns its measurements as a dict."""
  tf1.disable_eager_execution()
  import_mib = peak_rss_mib()  # TensorFlow and the project imported, no graph yet
  architecture, backbone, batch_size = spec.split(':')
  accumulation_steps = FLAGS.gradient_accumulation_steps
  ssd_config = _ssd_config(architecture, backbone, int(batch_size), accumulation_steps)
  with tf.Graph().as_default(), tempfile.TemporaryDirectory() as model_dir:
    tf1.set_random_seed(0)
    features, labels = _random_batch(ssd_config, int(batch_size))
    spec_ = model_fn.ssd_model_fn(features, labels, tf.estimator.ModeKeys.TRAIN,
                                  tf.estimator.RunConfig(model_dir=model_dir), ssd_config)
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      for _ in range(FLAGS.warmup * accumulation_steps):
        session.run(spec_.train_op)
      start = time.perf_counter()
      for _ in range(FLAGS.steps * accumulation_steps):
        session.run(spec_.train_op)
      seconds = time.perf_counter() - start
  runs = FLAGS.steps * accumulation_steps
  return {'peak_rss_mib': round(peak_rss_mib(), 1), 'import_rss_mib': round(import_mib, 1),
          'images_per_sec': round(int(batch_size) * runs / seconds, 3)}


def _resolved_backbone(architecture, backbone):
  if architecture not in ssd_net.ARCHITECTURES:
    raise app.UsageError('--models: unknown architecture %r; use one of %s.'
                         % (architecture, ', '.join(sorted(ssd_net.ARCHITECTURES))))
  return ssd_net.backbone_name(architecture, backbone)


def _measure(architecture, backbone, batch_size):
  """Runs one child; returns its dict, or raises RuntimeError with its output."""
  command = [sys.executable, os.path.abspath(__file__),
             '--child=%s:%s:%d' % (architecture, backbone, batch_size),
             '--gradient_accumulation_steps=%d' % FLAGS.gradient_accumulation_steps,
             '--steps=%d' % FLAGS.steps, '--warmup=%d' % FLAGS.warmup]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get('TF_CPP_MIN_LOG_LEVEL', '2'))
  # oneDNN as train_ssd.py decides it for this network (utility/onednn.py), set before the
  # child imports TensorFlow.
  model = _ssd_config(architecture, backbone, batch_size, FLAGS.gradient_accumulation_steps).model
  onednn.apply('training', environ=env,
               default_kernels_faster=model_spec.default_kernels_train_faster(model))
  result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
  lines = result.stdout.strip().splitlines()
  if result.returncode or not lines:
    raise RuntimeError('%s:%s batch %d failed (exit %d):\n%s'
                       % (architecture, backbone, batch_size, result.returncode,
                          result.stderr[-4000:]))
  return json.loads(lines[-1])


def main(argv):
  del argv
  if FLAGS.child:
    print(json.dumps(run_child(FLAGS.child)))
    return
  if FLAGS.gradient_accumulation_steps < 1 or FLAGS.steps < 1:
    raise app.UsageError('--gradient_accumulation_steps and --steps must be >= 1.')
  models = [(pair.split(':') + [''])[:2] for pair in FLAGS.models]
  models = [(a, _resolved_backbone(a, b)) for a, b in models]
  k = FLAGS.gradient_accumulation_steps
  rows = [(a, b, int(batch), _measure(a, b, int(batch)))
          for a, b in models for batch in FLAGS.batch_sizes]
  machine = hardware.describe()
  print('SSD training peak RSS on CPU: float32, NHWC, random weights, momentum SGD; '
        'gradient_accumulation_steps %d, %d measured optimizer steps after %d warm-up'
        % (k, FLAGS.steps, FLAGS.warmup))
  print('machine: %s' % hardware.describe_line(machine))
  print('%-10s %-14s %6s %10s %14s %10s' % ('head', 'backbone', 'batch', 'images/s',
                                            'peak RSS MiB', 'import MiB'))
  summary = {}
  suffix = '_k%d' % k if k > 1 else ''
  for architecture, backbone, batch, measured in rows:
    print('%-10s %-14s %6d %10.2f %14.1f %10.1f'
          % (architecture, backbone, batch, measured['images_per_sec'],
             measured['peak_rss_mib'], measured['import_rss_mib']))
    key = '%s_%s_b%d%s' % (architecture, backbone, batch, suffix)
    summary['peak_rss_mib_' + key] = measured['peak_rss_mib']
    summary['train_images_per_sec_' + key] = measured['images_per_sec']
  summary['import_rss_mib'] = min(measured['import_rss_mib'] for *_, measured in rows)
  summary.update({'gradient_accumulation_steps': k, 'steps': FLAGS.steps, 'machine': machine})
  print(json.dumps(summary))


if __name__ == '__main__':
  app.run(main)
