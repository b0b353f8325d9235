"""Evaluate a trained SSD on the val shards with the VOC protocol or COCO's (pycocotools).

  python eval_ssd.py --data_dir=DIR --model_dir=DIR [--det_dir=DIR] [--metric=voc07|area|coco]
      [--batch_size=8] [--checkpoint_path=CKPT] [--json_output=FILE]
      [--score_threshold=0.01 --pre_nms_top_k=400 --nms_iou_threshold=0.45 ...]

Builds the model from <model_dir>/ssd_config.json (whatever recipe trained it), runs detection
with per-class NMS in the graph, writes devkit result files comp4_det_test_<class>.txt (1-based
pixels of the original images) into --det_dir, prints per-class AP and mAP and writes them to
TensorBoard (<model_dir>/eval). --metric=coco instead writes <det_dir>/coco_results.json (COCO's
results format: original pixels, the dataset's category ids) and prints and logs COCOeval's twelve
numbers (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl); --json_output then
holds those twelve keys. TensorBoard's eval run also gets per-class PR curves (VOC metrics) and
the first --eval_images images with detections beside the ground truth.

On a split converted without annotations (convert_tfrecords.py --unannotated_splits, e.g. the
VOC2012 test set; read from <data_dir>/conversion_summary.json) no AP can be computed: the files
go to <det_dir>/results/<year>/Main/ as the evaluation server wants them, one per VOC class, and
into <det_dir>/results.tar.gz to upload (utility/voc_submission.py); --json_output then holds
{"mAP": null, "submission": <the archive>, "metric"}.
"""

import os
import sys

if __name__ == '__main__':  # before TensorFlow is imported: it reads the choice then
  from utility import onednn  # noqa: E402  (imports no TensorFlow)
  onednn.apply('inference')

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from dataset import input_fn  # noqa: E402
from net import evaluation  # noqa: E402
from net import hooks  # noqa: E402
from net import model_spec  # noqa: E402
from net import validation  # noqa: E402
from utility import script_setup  # noqa: E402
from utility import ssd_flags  # noqa: E402
from utility import voc_submission  # noqa: E402

flags.DEFINE_string('data_dir', None, 'Folder with the val-* TFRecord shards.')
flags.DEFINE_string('model_dir', None, 'Folder written by train_ssd.py.')
flags.DEFINE_string('val_file_pattern', 'val-*', 'Evaluation shards, relative to data_dir.')
flags.DEFINE_string('det_dir', '', 'Where to write result files; default <model_dir>/detections.')
flags.DEFINE_integer('batch_size', 8, 'Images per evaluation batch.')
flags.DEFINE_string('checkpoint_path', '', 'A specific checkpoint; default: the latest.')
flags.DEFINE_string('metric', '', "Evaluator (voc07: 11-point VOC07 AP, area: VOC2010+ AP, "
                    "coco: COCOeval AP@[.5:.95]); '' = the model's --eval_metric.")
flags.DEFINE_string('json_output', '', 'Also write the numbers here: {"mAP", "ap", "metric"} '
                    '(VOC) or {"AP", "AP50", ..., "ARl"} (coco); {"mAP": null, "submission", '
                    '"metric"} on a split without annotations.')
flags.DEFINE_string('data_format', '', 'Override the trained NHWC/NCHW layout (e.g. NHWC on CPU).')
flags.DEFINE_enum('conv_algorithm', '', ['', 'auto', 'direct', 'winograd'],
                  "Override the trained --conv_algorithm (net/winograd.py); '' = keep it.")
flags.DEFINE_integer('eval_images', 3, 'TensorBoard shows this many of the first evaluation '
                     'images, detections (score >= 0.3) beside the ground truth; 0 = none.',
                     lower_bound=0)
flags.DEFINE_string('submission_year', '', 'Split without annotations: the year folder of '
                    "results/<year>/Main in the archive; '' = the converted split's (VOC2012 "
                    'when the summary does not say).')
ssd_flags.define_config_flags(sections=('postprocess',))
flags.mark_flags_as_required(['data_dir', 'model_dir'])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  script_setup.setup()
  try:
    ssd_config = ssd_flags.inference_config(FLAGS.model_dir)
    if FLAGS.data_format:
      ssd_config = ssd_flags.override_model(ssd_config, data_format=FLAGS.data_format)
    if FLAGS.conv_algorithm:
      ssd_config = ssd_flags.override_model(ssd_config, conv_algorithm=FLAGS.conv_algorithm)
    det_dir = FLAGS.det_dir or evaluation.default_det_dir(FLAGS.model_dir)
    pattern = os.path.join(FLAGS.data_dir, FLAGS.val_file_pattern)
    num_images = input_fn.count_records(pattern)  # one sentence when nothing matches
    validation.validate(ssd_config, training=False)
    submission = voc_submission.plan(FLAGS.data_dir, FLAGS.val_file_pattern, det_dir,
                                     FLAGS.metric or ssd_config.postprocess.eval_metric,
                                     FLAGS.submission_year)
    eval_input_fn = input_fn.make_eval_input_fn(
        pattern, ssd_config, model_spec.model_inputs(ssd_config.model), FLAGS.batch_size)
    progress = hooks.EvaluationProgressHook(num_images, FLAGS.batch_size)
    evaluator, path, step = evaluation.evaluate(
        ssd_config, FLAGS.model_dir, eval_input_fn,
        submission.results_dir if submission else det_dir, FLAGS.metric,
        FLAGS.checkpoint_path, fallback_to_nhwc=not FLAGS.data_format,
        hooks=[progress], eval_images=FLAGS.eval_images)
    if submission:
      sentence = voc_submission.package(submission, evaluator.summary(),
                                        ssd_config.model.class_names, FLAGS.json_output)
  except (ValueError, FileNotFoundError) as error:
    logging.error('%s', error)
    sys.exit(1)
  print('%s (step %d):' % (path, step))
  if submission:
    print(sentence)
    return
  print(evaluator.report())
  print('Result files: %s' % det_dir)
  print(evaluation.summary_paragraph(evaluator, path, step, progress.progress))
  if FLAGS.json_output:
    evaluator.write_summary(FLAGS.json_output)


if __name__ == '__main__':
  app.run(main)
