"""Detect objects in images and draw them: from a training folder or an exported SavedModel.

  python simple_ssd_demo.py --model_dir=DIR --input=IMAGE_OR_FOLDER --output=DIR
      [--score_threshold=0.5] [--checkpoint_path=CKPT] [--data_format=NHWC]
  python simple_ssd_demo.py --saved_model=EXPORT_DIR --input=... --output=...

Each image (.jpg/.jpeg/.png/.bmp) is drawn with its detections (class name and score) into
--output under the same file name, and its detections are printed as
'image class score xmin ymin xmax ymax' (1-based pixels of the image). An unreadable image is
skipped with a warning naming it. With --model_dir the latest checkpoint is used and the
serving graph of net/export.py is built in-process; with --saved_model the export is run: the
same graph either way. The NMS settings are the model's (or the export's); --score_threshold
only selects what is drawn.
"""

import os
import sys

if not __package__:
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

if __name__ == '__main__':  # before TensorFlow is imported: it reads the choice then
  from utility import onednn  # noqa: E402  (imports no TensorFlow)
  onednn.apply('inference')

from absl import app
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from net import detector as detector_lib  # noqa: E402
from utility import detection_demo  # noqa: E402
from utility import script_setup  # noqa: E402

flags.DEFINE_string('model_dir', '', 'Folder written by train_ssd.py (uses its latest checkpoint).')
flags.DEFINE_string('saved_model', '', 'A SavedModel written by export_ssd.py (instead of '
                    '--model_dir).')
flags.DEFINE_string('checkpoint_path', '', 'With --model_dir: a specific checkpoint.')
flags.DEFINE_string('data_format', '', 'With --model_dir: layout to run; default NHWC (CPU).')
flags.DEFINE_string('input', None, 'An image file or a folder of images.')
flags.DEFINE_string('output', None, 'Folder for the drawn images (same file names).')
flags.DEFINE_float('score_threshold', 0.5, 'Draw and print detections scoring above this.')
flags.mark_flags_as_required(['input', 'output'])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  script_setup.setup()
  try:
    paths = detection_demo.list_images(FLAGS.input)
    with detector_lib.Detector.create(FLAGS.model_dir, FLAGS.saved_model, FLAGS.checkpoint_path,
                                      FLAGS.data_format) as detector:
      results, skipped = detection_demo.run(detector.detect, paths, FLAGS.output,
                                            FLAGS.score_threshold)
  except (ValueError, FileNotFoundError) as error:
    logging.error('%s', error)
    sys.exit(1)
  for path, detections in results:
    print('\n'.join(detection_demo.format_detections(path, detections)))
  print('Drew %d image(s) into %s (score > %g)%s.'
        % (len(results), FLAGS.output, FLAGS.score_threshold,
           '; skipped %d unreadable' % len(skipped) if skipped else ''))


if __name__ == '__main__':
  app.run(main)
