"""Export a trained SSD as a SavedModel for serving (encoded images in, detections out).

  python export_ssd.py --model_dir=DIR [--export_dir=DIR (default <model_dir>/export)]
      [--checkpoint_path=CKPT] [--overwrite] [--data_format=NHWC] [--tflite]
      [--conv_algorithm=auto|direct|winograd]
      [--score_threshold=0.01 --pre_nms_top_k=400 --nms_iou_threshold=0.45 ...]

Builds the model from <model_dir>/ssd_config.json, restores the latest checkpoint (or
--checkpoint_path) and writes a SavedModel whose 'serving_default' signature takes
'encoded_images' (string [batch], JPEG/PNG of any size) and returns detection_boxes
(normalized), detection_boxes_pixels (1-based VOC pixels of each original image),
detection_classes, detection_class_names, detection_scores and num_detections, with NMS
inside (net/export.py). The SavedModel needs only TensorFlow:

  tf.saved_model.load(DIR).signatures['serving_default'](encoded_images=tf.constant([jpeg]))

--tflite also writes DIR/tflite/: ssd.tflite (the network: float32 'images' [1, size, size, 3],
already resized and normalized, in; raw 'box_offsets' and softmax 'class_scores' out, float32
NHWC whatever --data_format says), anchors.npy and postprocess.json, for the numpy box
decoding and NMS of utility/tflite_postprocess.py, which gives the SavedModel's detections.
"""

import os
import sys
import time

if not __package__:
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

if __name__ == '__main__':  # before TensorFlow is imported: it reads the choice then
  from utility import onednn  # noqa: E402  (imports no TensorFlow)
  onednn.apply('inference')

from absl import app
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from net import export  # noqa: E402
from net import validation  # noqa: E402
from utility import checkpoint as checkpoint_lib  # noqa: E402
from utility import script_setup  # noqa: E402
from utility import ssd_flags  # noqa: E402

flags.DEFINE_string('model_dir', None, 'Folder written by train_ssd.py.')
flags.DEFINE_string('export_dir', '', 'SavedModel folder to write; default <model_dir>/export.')
flags.DEFINE_string('checkpoint_path', '', 'A specific checkpoint; default: the latest.')
flags.DEFINE_bool('overwrite', False, 'Replace an existing --export_dir.')
flags.DEFINE_string('data_format', '', 'Layout of the exported graph; default NHWC (CPU serving).')
flags.DEFINE_enum('conv_algorithm', '', ['', 'auto', 'direct', 'winograd'],
                  "Convolutions of the exported graph (net/winograd.py); '' = the trained "
                  "setting (auto: Winograd where oneDNN is on here). direct for a SavedModel "
                  'that will serve where oneDNN is off.')
flags.DEFINE_bool('tflite', False, 'Also write <export_dir>/tflite/: ssd.tflite (network only, '
                  'float32 NHWC), anchors.npy, postprocess.json (utility/tflite_postprocess.py).')
ssd_flags.define_config_flags(sections=('postprocess',))
flags.mark_flags_as_required(['model_dir'])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  script_setup.setup()
  try:
    ssd_config = ssd_flags.inference_config(FLAGS.model_dir)
    if FLAGS.conv_algorithm:
      ssd_config = ssd_flags.override_model(ssd_config, conv_algorithm=FLAGS.conv_algorithm)
    validation.validate(ssd_config, training=False)
    ssd_config = export.serving_config(ssd_config, FLAGS.data_format)
    checkpoint_path = checkpoint_lib.latest_checkpoint(FLAGS.model_dir, FLAGS.checkpoint_path)
    start = time.monotonic()
    export_dir = export.export_saved_model(
        ssd_config, checkpoint_path,
        FLAGS.export_dir or export.default_export_dir(FLAGS.model_dir), FLAGS.overwrite,
        tflite=FLAGS.tflite)
  except (ValueError, FileNotFoundError, FileExistsError) as error:
    logging.error('%s', error)
    sys.exit(1)
  print(export.summary_paragraph(ssd_config, checkpoint_path, export_dir,
                                 time.monotonic() - start))
  if FLAGS.tflite:
    print('TFLite: %s' % os.path.join(export_dir, export.TFLITE_SUBDIR))


if __name__ == '__main__':
  app.run(main)
