r"""Pascal VOC detection AP from devkit result files (numpy only; no TensorFlow needed).

    python voc_eval.py --voc_root=VOCdevkit --year=2007 --split=test --det_dir=DIR \
        [--metric=voc07|area] [--class_names=voc|a,b|FILE] [--json_output=FILE] \
        [--pr_curves_dir=DIR] [--cache_dir=DIR] [--error_analysis]

reads DIR/comp4_det_test_<class>.txt (lines '<image_id> <score> <xmin> <ymin> <xmax> <ymax>',
1-based pixels), prints AP, #GT (non-difficult) and #detections per class and the mAP, and
writes --json_output as {"mAP": float, "ap": {"<class>": float or null}, "metric": ...}.
The protocol is in utility/voc_metric.py. --error_analysis also prints what the top-ranked
detections are (correct, duplicate, localization, confusion with another class, background),
the most confused class pairs and the recall by object size (utility/voc_errors.py).
"""

import os
import sys

if not __package__:
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from absl import app
from absl import flags

from dataset import voc_ground_truth
from utility import labels
from utility import voc_errors
from utility import voc_metric

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string('voc_root', None, 'The VOCdevkit folder (or its parent).')
  flags.DEFINE_string('year', '2007', "VOC year: '2007' or 'VOC2007'.")
  flags.DEFINE_string('split', 'test', 'Split file ImageSets/Main/<split>.txt.')
  flags.DEFINE_string('det_dir', None, 'Folder with the comp4_det_test_<class>.txt files.')
  flags.DEFINE_enum('metric', 'voc07', voc_metric.METRICS, '11-point (VOC07) or area AP.')
  flags.DEFINE_string('class_names', 'voc', "'voc', a comma-separated list or a labels file.")
  flags.DEFINE_string('json_output', '', 'Write {"mAP", "ap", "metric"} here as JSON.')
  flags.DEFINE_string('pr_curves_dir', '', 'Write a precision-recall PNG per class here.')
  flags.DEFINE_string('cache_dir', '', 'Cache parsed annotations here (never used stale).')
  flags.DEFINE_bool('error_analysis', False, 'Also print what the top-ranked detections are '
                    '(correct, duplicate, localization, confusion, background) and the recall '
                    'by object size.')
  flags.mark_flags_as_required(['voc_root', 'det_dir'])


def _check_inputs(voc_root, det_dir, class_names, prefix):
  if not os.path.isdir(voc_root):
    raise ValueError('--voc_root=%s is not a folder; point it at VOCdevkit (or its parent).'
                     % voc_root)
  if not os.path.isdir(det_dir):
    raise ValueError('--det_dir=%s is not a folder; point it at the folder holding the '
                     '%s<class>.txt files.' % (det_dir, prefix))
  if not any(os.path.exists(voc_metric.detection_file_path(det_dir, name, prefix))
             for name in class_names):
    raise ValueError('--det_dir=%s holds no %s<class>.txt file for any of the %d classes; '
                     'check the folder and --class_names.' % (det_dir, prefix, len(class_names)))


def run_eval(voc_root, year, split, det_dir, metric='voc07', class_names='voc', json_output='',
             pr_curves_dir='', cache_dir='', prefix=voc_metric.DEFAULT_PREFIX,
             error_analysis=False):
  """Evaluates the result files in det_dir; returns (summary dict, table lines).

  With error_analysis the lines of voc_errors.format_report follow the AP table.

  Raises:
    ValueError: with a one-sentence message for any missing or malformed input.
  """
  names = labels.load_class_names(class_names)
  year_folder = year if year.upper().startswith('VOC') else 'VOC' + year
  _check_inputs(voc_root, det_dir, names, prefix)
  gt_annotations = voc_ground_truth.load_ground_truth(voc_root, year_folder, split,
                                                      cache_dir or None)
  detections = voc_metric.read_detections(det_dir, names, prefix)
  results = voc_metric.evaluate_classes(gt_annotations, detections, names, metric)
  summary = voc_metric.summarize(results, metric)
  if json_output:
    voc_metric.write_summary_json(json_output, summary)
  if pr_curves_dir:
    voc_metric.save_pr_curves(results, pr_curves_dir, metric)
  lines = voc_metric.format_table(results, summary)
  if error_analysis:
    lines += [''] + voc_errors.format_report(
        voc_errors.analyze(gt_annotations, detections, names))
  return summary, lines


def main(argv):
  del argv
  try:
    _, table = run_eval(FLAGS.voc_root, FLAGS.year, FLAGS.split, FLAGS.det_dir, FLAGS.metric,
                        FLAGS.class_names, FLAGS.json_output, FLAGS.pr_curves_dir,
                        FLAGS.cache_dir, error_analysis=FLAGS.error_analysis)
  except ValueError as e:
    sys.exit('Error: %s' % e)
  print('\n'.join(table))


if __name__ == '__main__':
  define_flags()
  app.run(main)
