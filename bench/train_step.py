"""SSD training speed on CPU: synthetic in-memory batches vs the real input pipeline.

    python bench/train_step.py [--data_dir=DIR] [--batch_size=8] [--steps=4]
        [--flagfile=configs/quick.flags for the quick model instead of SSD300]
        [--winograd_min_depths=IN,OUT: which 3x3 layers take Winograd, net/winograd.py]

Builds the real model_fn train op (network, target-encoded labels, multibox loss, weight decay,
momentum SGD) for SSD300-VGG16 (NHWC, full width, random initial weights unless flags say
otherwise) and times `--steps` steps after warm-up:
  - synthetic: one batch of the real pipeline's shape cached in memory (no input cost);
  - pipeline: the real tf.data input of dataset/input_fn.py over --data_dir's train shards
    (decode, augment, encode, batch); if --data_dir is empty, a small synthetic VOC set is
    generated and converted first.
A pipeline figure well below the synthetic one means the input stalls the model.
Prints a table; the last line is one JSON object.
"""

import json
import os
import sys
import tempfile
import time

if not __package__:
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import tensorflow as tf  # noqa: E402

from dataset import convert_tfrecords  # noqa: E402
from dataset import input_fn  # noqa: E402
from dataset import make_synthetic_voc  # noqa: E402
from net import kernel_support  # noqa: E402
from net import model_fn  # noqa: E402
from net import model_spec  # noqa: E402
from bench import op_trace  # noqa: E402
from bench import winograd_depths  # noqa: E402
from utility import hardware  # noqa: E402
from utility import script_setup  # noqa: E402
from utility import ssd_flags  # noqa: E402

tf1 = tf.compat.v1

flags.DEFINE_string('data_dir', '', 'Train shards to read; empty: make a small synthetic set.')
flags.DEFINE_integer('steps', 4, 'Timed steps per mode.')
flags.DEFINE_integer('warmup', 2, 'Untimed steps before timing.')
flags.DEFINE_bool('trace', False, 'Also trace one synthetic step (RunMetadata FULL_TRACE) and '
                  'print the time per op type and the slowest ops.')
flags.DEFINE_bool('skip_pipeline', False, 'Time only the synthetic (cached batch) steps.')
winograd_depths.define_flag()
ssd_flags.define_config_flags()
FLAGS = flags.FLAGS


def _make_data(tmp_dir):
  voc_root, records = os.path.join(tmp_dir, 'voc'), os.path.join(tmp_dir, 'records')
  make_synthetic_voc.generate_voc(voc_root, num_trainval=64, num_test=0, seed=0, min_size=375,
                                  max_size=500)
  convert_tfrecords.convert(voc_root, records,
                            convert_tfrecords.parse_split_specs('VOC2007:trainval', 'train'),
                            [], train_shards=2)
  return records


def time_training(ssd_config, pattern, cached, trace=False):
  """(images per second of the train op, op trace of one more step or None), with the batch
  cached in memory or streamed."""
  with tf.Graph().as_default():
    dataset = input_fn.train_dataset(pattern, ssd_config,
                                     model_spec.model_inputs(ssd_config.model),
                                     ssd_config.train.batch_size, seed=1)
    if cached:
      dataset = dataset.take(1).cache().repeat()
    features, labels = tf1.data.make_one_shot_iterator(dataset).get_next()
    spec = model_fn.ssd_model_fn(features, labels, tf.estimator.ModeKeys.TRAIN,
                                 tf.estimator.RunConfig(model_dir=tempfile.mkdtemp()),
                                 ssd_config)
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      for _ in range(FLAGS.warmup):
        session.run(spec.train_op)
      start = time.perf_counter()
      for _ in range(FLAGS.steps):
        session.run(spec.train_op)
      seconds = time.perf_counter() - start
      traced = op_trace.trace_run(session, spec.train_op) if trace else None
  return ssd_config.train.batch_size * FLAGS.steps / seconds, traced


def main(argv):
  del argv
  tf1.disable_eager_execution()
  if not FLAGS['batch_size'].present:
    FLAGS.batch_size = 8
  ssd_config = ssd_flags.config_from_flags(FLAGS, data_dir=FLAGS.data_dir)
  # oneDNN as train_ssd.py decides it for this network (utility/onednn.py; may restart).
  script_setup.decide_onednn('training',
                             model_spec.default_kernels_train_faster(ssd_config.model))
  winograd_depths.apply()
  ssd_config = kernel_support.resolve_and_log(ssd_config, training=True)
  data_dir = FLAGS.data_dir or _make_data(tempfile.mkdtemp(prefix='train_bench_'))
  pattern = os.path.join(data_dir, 'train-*')
  synthetic, trace = time_training(ssd_config, pattern, cached=True, trace=FLAGS.trace)
  pipeline = (None if FLAGS.skip_pipeline
              else time_training(ssd_config, pattern, cached=False)[0])
  model = ssd_config.model
  batch = ssd_config.train.batch_size
  machine = hardware.describe()
  print('%s %dx%d, width %.3g, %s, %s, batch %d, %d timed steps'
        % (model.architecture, model.image_size, model.image_size, model.width_multiplier,
           model.data_format, model.compute_dtype, batch, FLAGS.steps))
  print('machine: %s' % hardware.describe_line(machine))
  print('%-28s %10s' % ('input', 'images/s'))
  print('%-28s %10.2f' % ('synthetic (cached batch)', synthetic))
  summary = {'train_images_per_sec_b%d_synthetic' % batch: round(synthetic, 3)}
  if pipeline is not None:
    print('%-28s %10.2f' % ('real input pipeline', pipeline))
    summary['train_images_per_sec_b%d_pipeline' % batch] = round(pipeline, 3)
  if trace:
    op_trace.print_trace(trace, 'traced step (batch %d)' % batch)
    summary.update(op_trace.summary_of(trace))
  summary.update({'compute_dtype': model.compute_dtype, 'data_format': model.data_format,
                  'machine': machine})
  print(json.dumps(summary))


if __name__ == '__main__':
  app.run(main)
