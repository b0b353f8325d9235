r"""COCO box AP of a results file with pycocotools' COCOeval (no TensorFlow needed).

    python coco_eval.py --annotations=instances_val2017.json --results=coco_results.json \
        [--json_output=FILE]

--results is COCO's results format ([{"image_id", "category_id", "bbox": [x, y, w, h],
"score"}], pixels), as eval_ssd.py --metric=coco writes it (<det_dir>/coco_results.json).
Prints COCOeval's twelve numbers and writes --json_output as {"AP", "AP50", "AP75", "APs", "APm",
"APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"} (utility/coco_metric.py).
"""

import os
import sys

if not __package__:
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from absl import app
from absl import flags

from utility import coco_metric

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string('annotations', None, 'The ground truth: a COCO instances JSON file.')
  flags.DEFINE_string('results', None, 'The detections: a COCO results JSON file.')
  flags.DEFINE_string('json_output', '', 'Write the twelve numbers here as JSON.')
  flags.mark_flags_as_required(['annotations', 'results'])


def run_eval(annotations, results_path, json_output=''):
  """Returns (stats OrderedDict, printable lines); writes json_output when given.

  Raises:
    coco_metric.CocoMetricError: naming the file that cannot be used.
  """
  ground_truth = coco_metric.load_ground_truth(annotations)
  results = coco_metric.read_json(results_path, 'results')
  if not isinstance(results, list):
    raise coco_metric.CocoMetricError('%s must hold a JSON list of results.' % results_path)
  stats, _ = coco_metric.evaluate(ground_truth, results, source=results_path)
  if json_output:
    coco_metric.write_summary_json(json_output, stats)
  lines = ['%d results on %d images, %d categories (%s)'
           % (len(results), len(ground_truth.getImgIds()), len(ground_truth.getCatIds()),
              annotations)]
  return stats, lines + coco_metric.format_table(stats)


def main(argv):
  del argv
  try:
    _, lines = run_eval(FLAGS.annotations, FLAGS.results, FLAGS.json_output)
  except coco_metric.CocoMetricError as e:
    sys.exit('Error: %s' % e)
  print('\n'.join(lines))


if __name__ == '__main__':
  define_flags()
  app.run(main)
