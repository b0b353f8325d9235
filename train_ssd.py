"""Train SSD with tf.estimator.

  python train_ssd.py --data_dir=DIR --model_dir=DIR [--checkpoint_path=vgg_16.ckpt]
      [--flagfile=configs/ssd300_voc0712.flags] [--num_gpus=4 | --cpu_replicas=2]
      [--mode=train|train_and_eval]

Every setting of utility/config.py is a flag (see --helpfull). Rerunning the same command
resumes from the last checkpoint in --model_dir. The resolved settings are written to
<model_dir>/ssd_config.json; eval_ssd.py, export and the demo read them from there.
Several machines: set TF_CONFIG on each worker (README, "Multi-worker training").
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from dataset import input_fn  # noqa: E402
from net import model_spec  # noqa: E402
from net import training  # noqa: E402
from net import validation  # noqa: E402
from utility import script_setup  # noqa: E402
from utility import ssd_flags  # noqa: E402

flags.DEFINE_string('data_dir', None, 'Folder with train-*/val-* TFRecord shards.')
flags.DEFINE_string('model_dir', None, 'Checkpoints, TensorBoard events and ssd_config.json.')
flags.DEFINE_string('train_file_pattern', 'train-*', 'Training shards, relative to data_dir.')
flags.DEFINE_string('val_file_pattern', 'val-*', 'Evaluation shards, relative to data_dir.')
flags.DEFINE_enum('mode', 'train', ['train', 'train_and_eval'],
                  'train_and_eval: evaluate (loss and VOC mAP) on the val shards periodically.')
flags.DEFINE_integer('eval_throttle_secs', 600, 'Minimum seconds between evaluations.')
flags.DEFINE_integer('num_classes', 0, 'Classes including background; 0 = from --class_names. '
                     'Given, it must match.')
ssd_flags.define_config_flags()
flags.mark_flags_as_required(['data_dir', 'model_dir'])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  script_setup.setup()
  try:
    ssd_config = ssd_flags.config_from_flags(FLAGS, data_dir=FLAGS.data_dir)
    script_setup.decide_onednn(
        'training', model_spec.default_kernels_train_faster(ssd_config.model))
    if FLAGS.num_classes and FLAGS.num_classes != ssd_config.model.num_classes:
      raise ValueError('--num_classes=%d does not match the %d class names + background; fix '
                       '--num_classes or --class_names.'
                       % (FLAGS.num_classes, len(ssd_config.model.class_names)))
    validation.validate(ssd_config)
    train_input_fn, eval_input_fn = input_fn.make_input_fns(
        FLAGS.data_dir, ssd_config, model_spec.model_inputs(ssd_config.model),
        FLAGS.train_file_pattern, FLAGS.val_file_pattern)
    step = training.train(ssd_config, FLAGS.model_dir, train_input_fn, eval_input_fn,
                          FLAGS.mode == 'train_and_eval', FLAGS.eval_throttle_secs)
  except (ValueError, training.TrainingDiverged) as error:
    logging.error('%s', error)
    sys.exit(1)
  logging.info('Training reached step %d; checkpoints in %s. TensorBoard: tensorboard '
               '--logdir=%s', step, FLAGS.model_dir, FLAGS.model_dir)


if __name__ == '__main__':
  app.run(main)
